"""The robot task's world model and action space, for the planning generator (``generators.planning``):
pick-and-place proposals refined by the cross-entropy method (``CEMSteps``), each rolled forward by the
world model to the camera views it would produce.

World model: the simulator itself. ``SimulatorWorldModel`` saves the full pybullet state, executes
the action, renders the views the scorers read, and restores the state, so a prediction is exact
up to pybullet's determinism. Perception is what the scorers add: they see RGB only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from consensus.tasks.robot.scene import WORKSPACE, PickPlace, TabletopScene


@dataclass
class Prediction:
    """A candidate of the consensus loop: an action and the views predicted after it.

    ``reachable`` is False when the arm could not do it (the views then show the unchanged scene);
    ``round`` is the CEM iteration that proposed it.
    """

    action: PickPlace
    views: dict[str, np.ndarray] = field(repr=False)
    reachable: bool = True
    round: int = 0

    def summary(self) -> str:
        """One line for the trace."""
        a = self.action
        return f"put {a.obj} at ({a.x:.3f}, {a.y:.3f}), round {self.round}" + ("" if self.reachable else ", unreachable")


class SimulatorWorldModel:
    """Predict the views after each action by trying it in the simulator and undoing it."""

    def __init__(self, scene: TabletopScene, cameras: Sequence[str]):
        unknown = [c for c in cameras if c not in scene.cameras]
        if unknown:
            raise ValueError(f"unknown cameras {unknown}; the scene has {list(scene.cameras)}")
        self.scene = scene
        self.cameras = list(cameras)

    def predict(self, actions: Sequence[PickPlace], round: int = 0) -> list[Prediction]:
        state = self.scene.save()
        try:
            predictions = []
            for action in actions:
                reachable = self.scene.execute(action)
                predictions.append(Prediction(action, self.scene.render(self.cameras), reachable, round))
                self.scene.restore(state)
            return predictions
        finally:
            self.scene.forget(state)


#: Share of prior samples placed on another object rather than anywhere, and their spread (metres).
ANCHOR_SHARE, ANCHOR_SIGMA = 0.5, 0.02


def random_action(scene: TabletopScene, generator: torch.Generator) -> PickPlace:
    """The generator's prior, CEM's first round and the random baseline: pick any object; place it
    anywhere in the workspace (uniformly) half the time, and on another object's current position
    the other half, since arranging objects often means putting one on another. Object positions
    come from the world model (the simulator's state); the goal is never read."""
    objects = scene.object_names
    obj = objects[_randint(len(objects), generator)]
    if float(torch.rand(1, generator=generator)) < ANCHOR_SHARE:
        others = [o for o in objects if o != obj]
        x, y = scene.position(others[_randint(len(others), generator)])[:2]
        dx, dy = (torch.randn(2, generator=generator) * ANCHOR_SIGMA).tolist()
        return _clipped(obj, x + dx, y + dy)
    (x0, x1), (y0, y1) = WORKSPACE
    u, v = torch.rand(2, generator=generator).tolist()
    return PickPlace(obj, x0 + u * (x1 - x0), y0 + v * (y1 - y0))


def _randint(n: int, generator: torch.Generator) -> int:
    return int(torch.randint(n, (1,), generator=generator))


def _clipped(obj: str, x: float, y: float) -> PickPlace:
    (x0, x1), (y0, y1) = WORKSPACE
    return PickPlace(obj, min(max(x, x0), x1), min(max(y, y0), y1))


class PickPlaceSpace:
    """The action space of the tabletop (``generators.planning.ActionSpace``): the prior is
    ``random_action``; a perturbation moves the place point by a Gaussian of width ``sigma`` and,
    with chance ``switch``, picks a different object than the parent did."""

    def __init__(self, scene: TabletopScene, switch: float = 0.1):
        if not 0 <= switch <= 1:
            raise ValueError(f"PickPlaceSpace needs 0 <= switch <= 1, got {switch}")
        self.scene, self.switch = scene, switch

    def sample(self, generator: torch.Generator) -> PickPlace:
        return random_action(self.scene, generator)

    def perturb(self, action: PickPlace, sigma: float, generator: torch.Generator) -> PickPlace:
        obj = action.obj
        if float(torch.rand(1, generator=generator)) < self.switch:
            objects = self.scene.object_names
            obj = objects[_randint(len(objects), generator)]
        dx, dy = (torch.randn(2, generator=generator) * sigma).tolist()
        return _clipped(obj, action.x + dx, action.y + dy)
