"""The scorer contract: one frozen model that gives every candidate an energy.

Every scorer maps a batch of candidates and one condition to a 1-D tensor of energies,
one per candidate, where **lower means the scorer is more satisfied**. A scorer never
mutates its inputs and holds no state shared with the loop, so it can live on its own
device or process. What it reads and whether its energy has a gradient with respect to
the candidate are declared once, as class attributes, so the loops can check them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import torch


class Scorer(ABC):
    """Base class of every scorer.

    Class attributes:
        modality: what a candidate is ("text", "image", "state", ...).
        differentiable: whether ``energy`` is differentiable with respect to the candidate,
            so that gradient-based feedback (diffusion guidance) may use it.
    """

    modality: ClassVar[str]
    differentiable: ClassVar[bool] = False

    @property
    def name(self) -> str:
        return type(self).__name__

    @abstractmethod
    def energy(self, candidates: Sequence[Any], condition: Any) -> torch.Tensor:
        """Return a float tensor of shape ``[len(candidates)]``; lower is better."""

    def __repr__(self) -> str:
        return f"{self.name}(modality={self.modality!r}, differentiable={self.differentiable})"
