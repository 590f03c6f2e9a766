"""Selection: keep the lowest-energy candidates. Best-of-N is ``Best()`` for one step of N whole
solutions; step-level beam search is ``TopK(k)`` over many steps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from consensus.core.feedback.base import Context, Feedback, alive_energies, require_survivor


@dataclass(frozen=True)
class Best(Feedback):
    """Keep the single lowest-energy candidate (ties: the earliest)."""

    def __call__(self, proposals, energies, context: Context) -> dict[str, Any]:
        alive, total = alive_energies(proposals, energies)
        require_survivor(total)
        proposals.survivors = [alive[int(torch.argmin(total))]]
        return {"kept": proposals.survivors}


@dataclass(frozen=True)
class TopK(Feedback):
    """Keep the k lowest-energy candidates, best first (a beam); dropped (+inf) candidates never survive."""

    k: int

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"TopK needs k >= 1, got {self.k}")

    def __call__(self, proposals, energies, context: Context) -> dict[str, Any]:
        alive, total = alive_energies(proposals, energies)
        require_survivor(total)
        finite = int(torch.isfinite(total).sum())
        order = torch.argsort(total, stable=True)[: min(self.k, finite)].tolist()
        proposals.survivors = [alive[i] for i in order]
        return {"kept": proposals.survivors}
