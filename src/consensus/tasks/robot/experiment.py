"""The robot experiment assembled: per-view scorers over the tabletop's geometry, and their ensemble."""

from __future__ import annotations

from collections.abc import Sequence

from consensus.core.ensemble import Ensemble
from consensus.scorers.views import ViewScorer
from consensus.scorers.views.relations import SceneGeometry
from consensus.tasks.robot.ground_truth import DIRECTIONS
from consensus.tasks.robot.scene import TABLE_TOP, WORKSPACE, Camera
from consensus.zoo.segmenter import Segmenter

(_X0, _X1), (_Y0, _Y1) = WORKSPACE
#: The tabletop as the view scorers see it: the ground truth's directions, linearised just above the table's centre.
TABLETOP = SceneGeometry(directions=DIRECTIONS, anchor=((_X0 + _X1) / 2, (_Y0 + _Y1) / 2, TABLE_TOP + 0.03))


def view_scorer(camera: Camera, segmenter: Segmenter) -> ViewScorer:
    """The scorer of one camera of the tabletop."""
    return ViewScorer(camera, segmenter, TABLETOP)


def build_ensemble(cameras: Sequence[Camera], segmenter: Segmenter) -> Ensemble:
    """One scorer per camera, summed raw: their energies are all in image widths (``scorers.views``)."""
    return Ensemble([view_scorer(c, segmenter) for c in cameras])
