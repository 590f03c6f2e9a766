"""The planning protocols: what a model-predictive-control step needs of a world model and an action space.

A world model rolls candidate actions forward to predicted states that the scorers read (a simulator
saved and restored, a learned dynamics model, a video model); an action space samples actions from
the generator's prior and perturbs them around survivors. The robot task implements both over
pybullet; another environment implements the same members and reuses ``CEMSteps`` unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import torch


@runtime_checkable
class WorldModel(Protocol):
    def predict(self, actions: Sequence[Any], round: int = 0) -> list[Any]:
        """The predicted state after each action; each prediction carries its ``action`` and ``round``."""


@runtime_checkable
class ActionSpace(Protocol):
    def sample(self, generator: torch.Generator) -> Any:
        """One action from the prior (the first round, and the random baseline)."""

    def perturb(self, action: Any, sigma: float, generator: torch.Generator) -> Any:
        """An action near ``action``, at scale ``sigma``."""
