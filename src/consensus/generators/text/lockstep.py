"""Several items' consensus runs at once, their generator calls merged into one batch per step, and their
ensemble calls into one call per scorer.

A step-level run asks the LM for a few rows at a time (N next lines of its beam), which on a CPU costs
nearly what a batch several times larger does: every decoding step reads all the weights once. Running
K items' engine loops side by side, each in its own thread, and merging the generator calls they make
into one ``sample`` call turns K small batches into one large one, with the engine unchanged. Their
scorers' calls are merged the same way (``Ensemble.score_items``), so a verifier's encoder reads K items'
candidates in one batch.

``in_lockstep(lm, runs, ensemble)`` starts one thread per run, each given its own view of ``lm`` and of
``ensemble``. A call of ``sample`` or of the ensemble waits until every unfinished run has made its call (or
finished), then the last one to arrive makes them all: ``sample`` calls with the same options are merged, in
the runs' order, each run's rows drawing from its own random generator, so a run draws what it draws alone
(in float32; bfloat16 rounds a batch by its shape, so a merged batch can draw otherwise); the ensemble's calls
are merged into one per scorer, each run's candidates normalised among themselves, so a run gets the energies
it gets alone (within float tolerance).

The runs take turns: one at a time holds the baton and runs its own code (its feedback, its step's
bookkeeping), and hands it on when it waits for a merged call. So no model or tokenizer is ever called from
two threads at once (a fast tokenizer's padding settings are shared state), and the runs do not compete for
the cores.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import torch

from consensus.core.engine import ConsensusResult
from consensus.core.ensemble import Ensemble, EnsembleEnergies
from consensus.generators.text.protocol import Completion, TextGenerator

T = TypeVar("T")


@dataclass
class _Call:
    """One run's call of the generator (``sample``) or of the ensemble (``score``), waiting to be merged."""

    kind: str
    key: str  # calls of one kind with the same key are merged into one
    args: dict[str, Any]
    result: Any = None
    error: BaseException | None = None
    done: bool = False


class _Meeting:
    """Where the runs' calls wait for each other; the last to arrive runs them, merged."""

    def __init__(self, lm: TextGenerator, ensemble: Ensemble | None, runs: int):
        self.lm, self.ensemble, self.unfinished = lm, ensemble, runs
        self.waiting: dict[int, _Call] = {}
        self.changed = threading.Condition()
        self.baton = threading.Lock()  # held by the one run that is running
        self.stopped = False

    def sample(self, run: int, prompts: Sequence[str], n: int, generator: Any, options: dict[str, Any]) -> list:
        generators = list(generator) if isinstance(generator, (list, tuple)) else [generator] * len(prompts)
        if len(generators) != len(prompts):
            raise ValueError(f"give one generator per prompt: {len(generators)} generators, {len(prompts)} prompts")
        return self._call(run, _Call("sample", repr((n, sorted(options.items()))),
                                     {"prompts": list(prompts), "n": n, "options": options, "generators": generators}))

    def score(self, run: int, candidates: Sequence[Any], condition: Any, noise_level: Any) -> EnsembleEnergies:
        grad = torch.is_grad_enabled()  # grad mode is per thread: the merged call runs in the caller's
        return self._call(run, _Call("score", repr(grad), {"candidates": candidates, "condition": condition,
                                                           "noise_level": noise_level, "grad": grad}))

    def _call(self, run: int, call: _Call) -> Any:
        self.baton.release()
        try:
            with self.changed:
                self.waiting[run] = call
                self._run_if_all_wait()
                while not call.done and not self.stopped:
                    self.changed.wait()
                if not call.done:
                    raise _Stopped
        finally:
            self.baton.acquire()
        if call.error is not None:
            raise call.error
        return call.result

    def stop(self) -> None:
        """End every run at its next call: a call being made finishes, no other starts."""
        with self.changed:
            self.stopped = True
            self.changed.notify_all()

    def finished(self) -> None:
        with self.changed:
            self.unfinished -= 1
            self._run_if_all_wait()

    def _run_if_all_wait(self) -> None:
        if not self.waiting or len(self.waiting) < self.unfinished or self.stopped:
            return
        calls = [self.waiting.pop(run) for run in sorted(self.waiting)]
        alike: dict[tuple[str, str], list[_Call]] = {}
        for call in calls:
            alike.setdefault((call.kind, call.key), []).append(call)
        for (kind, _), group in alike.items():
            try:
                results = self._sampled(group) if kind == "sample" else self._scored(group)
                for call, result in zip(group, results):
                    call.result = result
            except Exception as error:  # every run in the batch gets it, in its own thread
                for call in group:
                    call.error = error
            for call in group:
                call.done = True
        self.changed.notify_all()

    def _sampled(self, group: list[_Call]) -> list[list[list[Completion]]]:
        """One ``sample`` call for the group, in the runs' order; each run's rows from its own generators."""
        first = group[0].args
        out = self.lm.sample([p for c in group for p in c.args["prompts"]], first["n"],
                             generator=[g for c in group for g in c.args["generators"]], **first["options"])
        results = []
        for call in group:
            results.append(out[:len(call.args["prompts"])])
            out = out[len(call.args["prompts"]):]
        return results

    def _scored(self, group: list[_Call]) -> list[EnsembleEnergies]:
        """One ``score_items`` call for the group: each scorer reads every run's candidates at once."""
        with torch.set_grad_enabled(group[0].args["grad"]):
            return self.ensemble.score_items([c.args["candidates"] for c in group],
                                             [c.args["condition"] for c in group],
                                             [c.args["noise_level"] for c in group])


class _Stopped(Exception):
    """Ends a run's thread when the caller's thread is interrupted."""


class _GeneratorView:
    """What one run sees as its generator: ``sample`` goes through the meeting, the rest to the LM itself."""

    def __init__(self, meeting: _Meeting, run: int):
        self._meeting, self._run = meeting, run

    def sample(self, prompts: Sequence[str], n: int = 1, *, generator: Any = None,
               **options: Any) -> list[list[Completion]]:
        return self._meeting.sample(self._run, prompts, n, generator, options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._meeting.lm, name)


class _EnsembleView(Ensemble):
    """What one run sees as its ensemble: the meeting's ensemble (its scorers, weights and rules), whose calls go
    through the meeting, merged with the other runs'."""

    def __init__(self, meeting: _Meeting, run: int):
        super().__init__(meeting.ensemble.scorers, meeting.ensemble.weights, **meeting.ensemble.options)
        self._meeting, self._run = meeting, run

    def __call__(self, candidates: Sequence[Any], condition: Any, noise_level: Any = None) -> EnsembleEnergies:
        return self._meeting.score(self._run, candidates, condition, noise_level)


def in_lockstep(lm: TextGenerator, runs: Sequence[Callable[[TextGenerator, Ensemble | None], T]],
                ensemble: Ensemble | None = None) -> list[T]:
    """``[run(lm_view, ensemble_view) for run in runs]``, the runs side by side, their ``lm_view.sample`` calls merged
    and their ``ensemble_view(...)`` calls merged (``ensemble_view`` is None without an ensemble). The first error
    of a run is raised once every run has ended."""
    meeting = _Meeting(lm, ensemble, len(runs))
    results: list[Any] = [None] * len(runs)
    errors: list[BaseException | None] = [None] * len(runs)

    def work(i: int) -> None:
        meeting.baton.acquire()
        try:
            results[i] = runs[i](_GeneratorView(meeting, i), None if ensemble is None else _EnsembleView(meeting, i))
        except BaseException as error:  # noqa: BLE001 - re-raised below, in the caller's thread
            errors[i] = error
        finally:
            meeting.finished()
            meeting.baton.release()

    threads = [threading.Thread(target=work, args=(i,), name=f"lockstep-{i}", daemon=True) for i in range(len(runs))]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    except BaseException:  # Ctrl-C or SIGTERM: the runs end at their next call, so no model is mid-call at exit
        meeting.stop()
        for thread in threads:
            thread.join()
        raise
    for error in errors:
        if error is not None:
            raise error
    return results


def consensus_in_lockstep(lm: TextGenerator,
                          runs: Sequence[Callable[[TextGenerator, Ensemble | None], ConsensusResult]],
                          ensemble: Ensemble | None = None) -> list[ConsensusResult]:
    """``in_lockstep`` for engine runs. The runs overlap in time, so each one's seconds (every entry) are scaled
    to its share of the wall time: their totals sum to the wall time of the whole."""
    start = time.perf_counter()
    results = in_lockstep(lm, runs, ensemble)
    share = (time.perf_counter() - start) / max(sum(r.seconds.get("total", 0.0) for r in results), 1e-9)
    return [replace(r, seconds={k: v * share for k, v in r.seconds.items()}) for r in results]
