"""Several items' consensus runs at once, their generator calls merged into one batch per step.

A step-level run asks the LM for a few rows at a time (N next lines of its beam), which on a CPU costs
nearly what a batch several times larger does: every decoding step reads all the weights once. Running
K items' engine loops side by side, each in its own thread, and merging the generator calls they make
into one ``sample`` call turns K small batches into one large one, with the engine unchanged.

``in_lockstep(lm, runs)`` starts one thread per run, each given its own view of ``lm``. A call of
``sample`` waits until every unfinished run has made its call (or finished), then the last one to
arrive samples for all: calls with the same options are merged, in the runs' order, each run's rows
drawing from its own random generator, so a run draws what it draws alone (in float32; bfloat16 rounds
a batch by its shape, so a merged batch can draw otherwise).

The runs take turns: one at a time holds the baton and runs its own code (its scorers, its feedback), and
hands it on when it waits for the merged call. So no model or tokenizer is ever called from two threads
at once (a fast tokenizer's padding settings are shared state), and the runs do not compete for the cores.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from consensus.core.engine import ConsensusResult
from consensus.generators.text.protocol import Completion, TextGenerator

T = TypeVar("T")


@dataclass
class _Call:
    prompts: list[str]
    n: int
    options: dict[str, Any]
    generators: list[Any]
    result: list[list[Completion]] | None = None
    error: BaseException | None = None


class _Meeting:
    """Where the runs' ``sample`` calls wait for each other; the last to arrive runs them."""

    def __init__(self, lm: TextGenerator, runs: int):
        self.lm, self.unfinished = lm, runs
        self.waiting: dict[int, _Call] = {}
        self.changed = threading.Condition()
        self.baton = threading.Lock()  # held by the one run that is running

    def sample(self, run: int, prompts: Sequence[str], n: int, generator: Any, options: dict[str, Any]) -> list:
        generators = list(generator) if isinstance(generator, (list, tuple)) else [generator] * len(prompts)
        if len(generators) != len(prompts):
            raise ValueError(f"give one generator per prompt: {len(generators)} generators, {len(prompts)} prompts")
        call = _Call(list(prompts), n, options, generators)
        self.baton.release()
        try:
            with self.changed:
                self.waiting[run] = call
                self._sample_if_all_wait()
                while call.result is None and call.error is None:
                    self.changed.wait()
        finally:
            self.baton.acquire()
        if call.error is not None:
            raise call.error
        return call.result

    def finished(self) -> None:
        with self.changed:
            self.unfinished -= 1
            self._sample_if_all_wait()

    def _sample_if_all_wait(self) -> None:
        if not self.waiting or len(self.waiting) < self.unfinished:
            return
        calls = [self.waiting.pop(run) for run in sorted(self.waiting)]
        alike: dict[str, list[_Call]] = {}
        for call in calls:
            alike.setdefault(repr((call.n, sorted(call.options.items()))), []).append(call)
        for group in alike.values():
            try:
                out = self.lm.sample([p for c in group for p in c.prompts], group[0].n,
                                     generator=[g for c in group for g in c.generators], **group[0].options)
                for call in group:
                    call.result, out = out[:len(call.prompts)], out[len(call.prompts):]
            except Exception as error:  # every run in the batch gets it, in its own thread
                for call in group:
                    call.error = error
        self.changed.notify_all()


class _RunView:
    """What one run sees as its generator: ``sample`` goes through the meeting, the rest to the LM itself."""

    def __init__(self, meeting: _Meeting, run: int):
        self._meeting, self._run = meeting, run

    def sample(self, prompts: Sequence[str], n: int = 1, *, generator: Any = None,
               **options: Any) -> list[list[Completion]]:
        return self._meeting.sample(self._run, prompts, n, generator, options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._meeting.lm, name)


def in_lockstep(lm: TextGenerator, runs: Sequence[Callable[[TextGenerator], T]]) -> list[T]:
    """``[run(view) for run in runs]``, the runs side by side, their ``view.sample`` calls merged. The first
    error of a run is raised once every run has ended."""
    meeting = _Meeting(lm, len(runs))
    results: list[Any] = [None] * len(runs)
    errors: list[BaseException | None] = [None] * len(runs)

    def work(i: int) -> None:
        meeting.baton.acquire()
        try:
            results[i] = runs[i](_RunView(meeting, i))
        except BaseException as error:  # noqa: BLE001 - re-raised below, in the caller's thread
            errors[i] = error
        finally:
            meeting.finished()
            meeting.baton.release()

    threads = [threading.Thread(target=work, args=(i,), name=f"lockstep-{i}", daemon=True) for i in range(len(runs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for error in errors:
        if error is not None:
            raise error
    return results


def consensus_in_lockstep(lm: TextGenerator,
                          runs: Sequence[Callable[[TextGenerator], ConsensusResult]]) -> list[ConsensusResult]:
    """``in_lockstep`` for engine runs. The runs overlap in time, so each one's seconds (every entry) are scaled
    to its share of the wall time: their totals sum to the wall time of the whole."""
    start = time.perf_counter()
    results = in_lockstep(lm, runs)
    share = (time.perf_counter() - start) / max(sum(r.seconds.get("total", 0.0) for r in results), 1e-9)
    return [replace(r, seconds={k: v * share for k, v in r.seconds.items()}) for r in results]
