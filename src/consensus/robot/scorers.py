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

from collections.abc import Sequence
from functools import cached_property
from typing import Any

import numpy as np
import torch

from consensus.robot.ground_truth import DIRECTIONS
from consensus.robot.relations import Goal, Relation
from consensus.robot.scene import TABLE_TOP, WORKSPACE, Camera
from consensus.robot.segmenter import Segmenter
from consensus.scorer import Scorer

MARGIN = 0.08  # metres: aim past the ground truth's 0.04 so that small errors still land on the right side
STACK_LIFT = 0.05  # metres between the mask centroids of an object and the one it rests on
UNSEEN_ENERGY = 0.25
MIN_PIXELS = 3


class ViewScorer(Scorer):
    """The energy of a goal as one camera sees it; candidates carry ``views[camera.name]`` (RGB).

    Args:
        camera: the view this scorer reads (its pose gives the projection Jacobian).
        segmenter: any model following segmenter.Segmenter whose class names include the goal's objects.
    """

    modality = "image"
    differentiable = False

    def __init__(self, camera: Camera, segmenter: Segmenter):
        self.camera = camera
        self.segmenter = segmenter

    @property
    def name(self) -> str:
        return f"view:{self.camera.name}"

    @cached_property
    def jacobian(self) -> np.ndarray:
        """Pixels per metre along world x, y, z at the workspace centre, ``[2, 3]``, by central differences."""
        (x0, x1), (y0, y1) = WORKSPACE
        centre, eps = np.array([(x0 + x1) / 2, (y0 + y1) / 2, TABLE_TOP + 0.03]), 0.01
        steps = np.eye(3) * eps
        return ((self.camera.project(centre + steps) - self.camera.project(centre - steps)) / (2 * eps)).T

    def energy(self, candidates: Sequence[Any], condition: Goal) -> torch.Tensor:
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

    def goal_energy(self, labels: np.ndarray, goal: Goal, classes: dict[str, int]) -> float:
        """Sum of the relations' energies in one segmented view ``labels [H, W]``."""
        centroids = {o: _centroid(labels == classes[o]) for o in goal.objects}
        return sum(self.relation_energy(r, centroids[r.subject], centroids[r.reference]) for r in goal.relations)

    def relation_energy(self, relation: Relation, a: np.ndarray | None, b: np.ndarray | None) -> float:
        """The module docstring's formulas, for mask centroids ``a``, ``b`` (None: not found)."""
        if a is None or b is None:
            return UNSEEN_ENERGY
        delta = a - b
        if relation.kind == "on top of":
            return float(np.linalg.norm(delta - self.jacobian @ np.array([0.0, 0.0, STACK_LIFT]))) / self.camera.size
        g = self.jacobian @ np.asarray(DIRECTIONS[relation.kind])
        length = float(np.linalg.norm(g))
        return max(0.0, MARGIN * length - float(delta @ g) / length) / self.camera.size


def _centroid(mask: np.ndarray) -> np.ndarray | None:
    """(column, row) mean of a boolean mask, None when it has fewer than MIN_PIXELS pixels."""
    rows, cols = np.nonzero(mask)
    return np.array([cols.mean(), rows.mean()]) if len(rows) >= MIN_PIXELS else None
