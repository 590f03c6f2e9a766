"""Adaptive compute: a step that grows its pool of whole candidates in rounds until the experts agree.

Round r tops the pool up to ``sizes[r]`` candidates (2, 4, 8, … by default) with fresh draws and proposes the
whole pool, so the scorers judge every candidate drawn so far (normalisation across the pool, answer agreement
among all of them) and a round costs only its new draws' tokens. Only the last round's candidates are complete,
so the engine keeps drawing until a stopping rule fires: ``Agreement`` (the survivors' answers agree, by votes
or by the ensemble's weights), ``Verified`` (the ensemble's choice passes one expert's check), a ``Budget`` of
generator tokens, or the last size. Run it without a selecting
form (``feedback=()``), so the pool survives whole; the engine's best is then the pool's lowest-energy candidate:

    run_consensus(Rounds(steps.propose), ensemble, question, feedback=(),
                  agreement=Agreement(answer, share=0.75, weighted=True), budget=Budget(iterations=5))

Each round is one iteration of the trace (its candidates, energies and tokens), so a run's rounds are recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from consensus.core.engine import Proposals

#: its_hub's adaptive self-consistency schedule, to 32 samples
DOUBLING = (2, 4, 8, 16, 32)


def doubling(up_to: int) -> tuple[int, ...]:
    """Pool sizes 2, 4, 8, … below ``up_to``, then ``up_to`` itself: (2, 4, 8) for 8, (2, 4, 8, 12) for 12."""
    if up_to < 1:
        raise ValueError(f"a pool holds at least 1 candidate, got {up_to}")
    sizes, size = [], 2
    while size < up_to:
        sizes.append(size)
        size *= 2
    return (*sizes, up_to)


@dataclass(frozen=True)
class Rounds:
    """The pool grown to each of ``sizes`` in turn; ``draw(condition, n, generator)`` gives n fresh, complete
    candidates as ``Proposals`` (e.g. ``SolutionSteps.propose``). A pool that a selecting form narrowed keeps its
    survivors and is topped up to the next size."""

    draw: Callable[[Any, int, torch.Generator], Proposals]
    sizes: Sequence[int] = DOUBLING

    def __post_init__(self) -> None:
        sizes = list(self.sizes)
        if not sizes or sizes[0] < 1 or any(b <= a for a, b in zip(sizes, sizes[1:])):
            raise ValueError(f"Rounds.sizes must be increasing pool sizes >= 1, got {sizes}")

    def __call__(self, condition: Any, population: Any, generator: torch.Generator) -> Proposals:
        pool = [] if population is None else population
        size = next((s for s in self.sizes if s > len(pool)), None)
        if size is None:
            raise ValueError(f"the pool already holds {len(pool)} candidates, the last of Rounds.sizes "
                             f"{list(self.sizes)}; give the run a budget of at most {len(self.sizes)} iterations")
        fresh = self.draw(condition, size - len(pool), generator)
        if isinstance(fresh.candidates, torch.Tensor):
            candidates = fresh.candidates if len(pool) == 0 else torch.cat([pool, fresh.candidates])
        else:
            candidates = [*pool, *fresh.candidates]
        last = size == self.sizes[-1]
        return Proposals(candidates, tokens=fresh.tokens, complete=[last] * len(candidates),
                         noise_level=fresh.noise_level)
