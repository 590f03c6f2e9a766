"""The feedback-form contract: one small object that acts on a step's proposals.

A form is called once per engine iteration, after the ensemble has scored the candidates, as
``form(proposals, energies, context)``. It may narrow ``proposals.survivors`` (selection,
resampling), or act through ``proposals.hooks`` on what the generator does next (reweight the
next-token distribution, shift the LM's cache, move a diffusion sample along the gradient). Forms
chain in order, like transformers' logits processors: a later form sees what an earlier one left.
It returns a small JSON-able dict of what it did, which the trace records under its name.

Class attributes:
    needs_energies: the form reads the ensemble's energies (False for a form that runs unscored).
    needs_gradient: the engine scores with autograd on, so the form can differentiate the energies.
    needs_hooks: the protocol (``runtime_checkable``) the step's ``proposals.hooks`` must follow for this form to
        act through it, or None; the engine checks it at the first iteration, naming the form and the step.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch

if TYPE_CHECKING:
    from consensus.core.engine import Proposals
    from consensus.core.ensemble import Ensemble, EnsembleEnergies


@dataclass(frozen=True)
class Context:
    """What a form may need besides the proposals and energies."""

    ensemble: Ensemble | None
    condition: Any
    iteration: int
    generator: torch.Generator


class Feedback(ABC):
    needs_energies: ClassVar[bool] = True
    needs_gradient: ClassVar[bool] = False
    needs_hooks: ClassVar[type | None] = None

    @property
    def name(self) -> str:
        return type(self).__name__

    def check(self, ensemble: Ensemble) -> None:
        """Refuse, with a clear error, an ensemble this form cannot honour (called once per run)."""

    @abstractmethod
    def __call__(self, proposals: Proposals, energies: EnsembleEnergies | None, context: Context) -> dict[str, Any]:
        """Act on ``proposals``; return what was done, for the trace."""


def require_survivor(energies: torch.Tensor) -> None:
    if energies.numel() == 0 or not bool(torch.isfinite(energies).any()):
        raise ValueError(
            "no candidate has a finite energy (all were dropped or none was proposed); "
            "check the generator's output and the scorers' NaN policy"
        )


def alive_energies(proposals: Proposals, energies: EnsembleEnergies) -> tuple[list[int], torch.Tensor]:
    """The candidates still alive and their total energies (what a selection form chooses among)."""
    alive = proposals.alive()
    total = energies.total.detach()
    return alive, total[torch.tensor(alive, dtype=torch.long)]
