"""The cross-entropy method as the engine's step: one CEM round of actions per iteration.

Round 0 samples the action space's prior; each later round keeps the survivors (the elites that
``TopK`` kept; their predictions are not recomputed) and samples around them, with a perturbation
scale that shrinks each round, ``sigma * decay**(round - 1)``. Every new action is rolled through
the world model, whose predicted states are the candidates the scorers read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from consensus.core.engine import Proposals
from consensus.generators.planning.protocol import ActionSpace, WorldModel


class CEMSteps:
    """Args:
        world_model: predicts the state after every proposed action.
        space: samples and perturbs actions.
        samples: candidates per round (survivors included).
        sigma: perturbation scale in round 1; ``decay`` shrinks it each round.
    """

    def __init__(self, world_model: WorldModel, space: ActionSpace, samples: int, sigma: float = 0.06,
                 decay: float = 0.5):
        if samples < 1 or sigma <= 0 or not 0 < decay <= 1:
            raise ValueError("CEMSteps needs samples >= 1, sigma > 0 and 0 < decay <= 1")
        self.world_model, self.space = world_model, space
        self.samples, self.sigma, self.decay = samples, sigma, decay

    def __call__(self, condition: Any, population: Sequence[Any] | None, generator: torch.Generator) -> Proposals:
        if not population:
            actions = [self.space.sample(generator) for _ in range(self.samples)]
            return Proposals(self.world_model.predict(actions, round=0), complete=[False] * self.samples)
        this_round = max(p.round for p in population) + 1
        sigma = self.sigma * self.decay ** (this_round - 1)
        actions = [
            self.space.perturb(population[k % len(population)].action, sigma, generator)
            for k in range(self.samples - len(population))
        ]
        candidates = list(population) + self.world_model.predict(actions, round=this_round)
        return Proposals(candidates, complete=[False] * len(candidates))
