"""The gradient-free consensus loop (DESIGN.md §1): propose, score, select, feed back.

    parents <- None
    repeat:
        candidates <- proposer(condition, parents)          # the generator
        E          <- ensemble(candidates, condition)       # every scorer, summed
        parents    <- select(E)                             # best / top-k / resample
    until the budget is spent, the energy stops falling, or the proposer says it is done

Solution-level best-of-N is one iteration with ``Best()``; step-level search is many
iterations with ``TopK(k)`` where the proposer extends each survivor by one step.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from consensus.ensemble import Ensemble
from consensus.selection import Best
from consensus.trace import TraceWriter


@dataclass
class Proposals:
    """What a proposer returns: the candidates and what making them cost.

    ``complete[i]`` says candidate i needs no further iteration (a finished solution);
    ``tokens`` counts the generator tokens spent on this batch.
    """

    candidates: list[Any]
    tokens: int = 0
    complete: list[bool] | None = None

    def __post_init__(self) -> None:
        if self.complete is None:
            self.complete = [True] * len(self.candidates)
        if len(self.complete) != len(self.candidates):
            raise ValueError("Proposals.complete must have one flag per candidate")


class Proposer(Protocol):
    def __call__(self, condition: Any, parents: Sequence[Any] | None, generator: torch.Generator) -> Proposals:
        """Propose candidates for ``condition``; ``parents`` are the last survivors (None at first)."""


@dataclass(frozen=True)
class Budget:
    """Limits of one loop run; ``None`` means unlimited. The loop stops before an iteration
    it can no longer afford and after one that overspent (a proposer cannot be cut mid-batch)."""

    iterations: int = 1
    generator_tokens: int | None = None
    scorer_calls: int | None = None

    def __post_init__(self) -> None:
        if self.iterations < 1:
            raise ValueError(f"Budget.iterations must be >= 1, got {self.iterations}")


@dataclass
class ConsensusResult:
    best: Any
    best_energy: float
    survivors: list[Any]
    iterations: int
    generator_tokens: int
    scorer_calls: int
    stop_reason: str
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def overhead_fraction(self) -> float:
        """Share of wall time spent outside the generator and the scorers."""
        total = self.seconds.get("total", 0.0)
        return self.seconds.get("loop", 0.0) / total if total > 0 else 0.0


def run_consensus(
    proposer: Proposer,
    ensemble: Ensemble,
    condition: Any,
    *,
    select: Callable[[torch.Tensor, torch.Generator], list[int]] = Best(),
    budget: Budget = Budget(),
    patience: int | None = None,
    agreement: Callable[[Any], Any] | None = None,
    seed: int = 0,
    callback: Callable[[dict[str, Any]], None] | None = None,
    trace: TraceWriter | None = None,
) -> ConsensusResult:
    """Run the loop until a stopping rule fires.

    Stopping rules, checked after every iteration: every survivor is complete
    (``"complete"``); the iteration budget or the generator-token / scorer-call budget is
    spent (``"budget"``); the best energy has not fallen for ``patience`` iterations
    (``"plateau"``); two or more survivors agree, i.e. ``agreement`` maps them all to the
    same value that is not None, such as the same final answer (``"agreement"``). Energies
    are compared only when the ensemble normalisation is ``none``, since normalised energies
    are relative to each iteration's candidate set.

    The result's ``best`` is the lowest-energy survivor of the last iteration.

    ``callback`` receives one dict per iteration with the keys ``iteration``,
    ``candidates``, ``energies`` (an EnsembleEnergies), ``survivors`` (indices),
    ``best_energy``, ``generator_tokens``, ``scorer_calls``; the same is written to ``trace``.
    """
    if patience is not None and ensemble.normalization != "none":
        raise ValueError("patience compares energies across iterations; use it with normalization='none'")
    rng = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    model_seconds: dict[str, float] = {"generator": 0.0}
    parents: list[Any] | None = None
    tokens = calls = 0
    best, best_energy, lowest, stale = None, math.inf, math.inf, 0
    stop_reason = "budget"
    for iteration in range(budget.iterations):
        t = time.perf_counter()
        proposals = proposer(condition, parents, rng)
        model_seconds["generator"] += time.perf_counter() - t
        tokens += proposals.tokens
        if not proposals.candidates:
            raise ValueError("the proposer returned no candidates; check the generator and the condition")
        energies = ensemble(proposals.candidates, condition)
        calls += len(ensemble.scorers)
        for name, sec in energies.seconds.items():
            model_seconds[name] = model_seconds.get(name, 0.0) + sec
        survivors = select(energies.total.detach(), rng)
        parents = [proposals.candidates[i] for i in survivors]
        lead = min(survivors, key=lambda i: float(energies.total[i]))
        lead_energy = float(energies.total[lead])
        best, best_energy = proposals.candidates[lead], lead_energy
        stale = 0 if lead_energy < lowest else stale + 1
        lowest = min(lowest, lead_energy)
        record = {
            "iteration": iteration,
            "candidates": proposals.candidates,
            "energies": energies,
            "survivors": survivors,
            "best_energy": lead_energy,
            "generator_tokens": tokens,
            "scorer_calls": calls,
        }
        if callback is not None:
            callback(record)
        if trace is not None:
            trace.write({**record, "energies": energies.to_json(), "seconds": dict(model_seconds)})
        if all(proposals.complete[i] for i in survivors):
            stop_reason = "complete"
            break
        if agreement is not None and len(parents) > 1:
            keys = [agreement(p) for p in parents]
            if keys[0] is not None and all(k == keys[0] for k in keys):
                stop_reason = "agreement"
                break
        if patience is not None and stale >= patience:
            stop_reason = "plateau"
            break
        if (budget.generator_tokens is not None and tokens >= budget.generator_tokens) or (
            budget.scorer_calls is not None and calls + len(ensemble.scorers) > budget.scorer_calls
        ):
            stop_reason = "budget"
            break
    total = time.perf_counter() - start
    seconds = {**model_seconds, "total": total, "loop": max(0.0, total - sum(model_seconds.values()))}
    return ConsensusResult(
        best=best,
        best_energy=best_energy,
        survivors=parents or [],
        iterations=iteration + 1,
        generator_tokens=tokens,
        scorer_calls=calls,
        stop_reason=stop_reason,
        seconds=seconds,
    )
