"""Per-view scorers: segment one camera's predicted view and measure every relation in its image.

A view sees the world projected: a world direction d near the workspace centre moves a point by
``J @ d`` pixels, where J (2x3, pixels per metre) is the camera's projection Jacobian there. With
``c_A`` and ``c_B`` the centroids of the two objects' masks and ``delta = c_A - c_B``:

    A <direction> B :  E = relu(MARGIN * |J d| - delta . (J d) / |J d|) / size   # hinge along d's image
    A on top of B   :  E = |delta - J (0, 0, STACK_LIFT)| / size                 # A sits just above B

Energies are in image widths, so every view speaks on the same scale and the Ensemble can sum them
raw. An object the segmenter cannot find in a view (hidden, or missed) costs UNSEEN_ENERGY there:
the view has no evidence, and states it cannot check should not look better than ones it can.
Each view is fooled in its own way (a 45-degree view confuses "behind" with "above"; an object
hides behind another in one view only), which is why the paper sums several views.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

import numpy as np
import torch

from consensus.core.scorer import Scorer
from consensus.zoo.segmenter import Segmenter

MARGIN = 0.08  # metres: aim past the ground truth's 0.04 so that small errors still land on the right side
STACK_LIFT = 0.05  # metres between the mask centroids of an object and the one it rests on
UNSEEN_ENERGY = 0.25
MIN_PIXELS = 3


class Camera(Protocol):
    """A camera: its name, image size in pixels, and ``project(points [K, 3]) -> pixels [K, 2]``."""

    name: str
    size: int

    def project(self, points: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class SceneGeometry:
    """What a view scorer must know of the world: each direction relation's unit vector in world
    coordinates, and the point near which the camera's projection is linearised (the workspace's centre)."""

    directions: Mapping[str, tuple[float, float, float]]
    anchor: tuple[float, float, float]


class ViewScorer(Scorer):
    """The energy of a goal as one camera sees it; candidates carry ``views[camera.name]`` (RGB).

    The condition is a goal: ``objects`` (names) and ``relations`` (each with ``kind``, ``subject``,
    ``reference``), as ``consensus.tasks.robot.relations.Goal``.

    Args:
        camera: the view this scorer reads (its projection gives the Jacobian).
        segmenter: any model following zoo.segmenter.Segmenter whose class names include the goal's objects.
        geometry: the world's directions and the workspace's centre.
    """

    modality = "image"
    differentiable = False

    def __init__(self, camera: Camera, segmenter: Segmenter, geometry: SceneGeometry):
        self.camera = camera
        self.segmenter = segmenter
        self.geometry = geometry

    @property
    def name(self) -> str:
        return f"view:{self.camera.name}"

    @cached_property
    def jacobian(self) -> np.ndarray:
        """Pixels per metre along world x, y, z at the workspace centre, ``[2, 3]``, by central differences."""
        centre, eps = np.array(self.geometry.anchor, dtype=np.float64), 0.01
        steps = np.eye(3) * eps
        return ((self.camera.project(centre + steps) - self.camera.project(centre - steps)) / (2 * eps)).T

    def energy(self, candidates: Sequence[Any], condition: Any) -> torch.Tensor:
        classes = {name: i for i, name in enumerate(self.segmenter.class_names)}
        missing = [o for o in condition.objects if o not in classes]
        if missing:
            raise ValueError(f"the segmenter of {self.name} has no class for {missing}; it knows {list(classes)[1:]}")
        try:
            images = np.stack([c.views[self.camera.name] for c in candidates])
        except (AttributeError, KeyError) as err:
            raise ValueError(
                f"{self.name} needs candidates with views[{self.camera.name!r}]; predict that camera"
            ) from err
        labels = self.segmenter(images)
        return torch.tensor([self.goal_energy(l, condition, classes) for l in labels], dtype=torch.float64)

    def goal_energy(self, labels: np.ndarray, goal: Any, classes: dict[str, int]) -> float:
        """Sum of the relations' energies in one segmented view ``labels [H, W]``."""
        centroids = {o: _centroid(labels == classes[o]) for o in goal.objects}
        return sum(self.relation_energy(r, centroids[r.subject], centroids[r.reference]) for r in goal.relations)

    def relation_energy(self, relation: Any, a: np.ndarray | None, b: np.ndarray | None) -> float:
        """The module docstring's formulas, for mask centroids ``a``, ``b`` (None: not found)."""
        if a is None or b is None:
            return UNSEEN_ENERGY
        delta = a - b
        if relation.kind == "on top of":
            return float(np.linalg.norm(delta - self.jacobian @ np.array([0.0, 0.0, STACK_LIFT]))) / self.camera.size
        g = self.jacobian @ np.asarray(self.geometry.directions[relation.kind])
        length = float(np.linalg.norm(g))
        return max(0.0, MARGIN * length - float(delta @ g) / length) / self.camera.size


def _centroid(mask: np.ndarray) -> np.ndarray | None:
    """(column, row) mean of a boolean mask, None when it has fewer than MIN_PIXELS pixels."""
    rows, cols = np.nonzero(mask)
    return np.array([cols.mean(), rows.mean()]) if len(rows) >= MIN_PIXELS else None
