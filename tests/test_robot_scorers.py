"""Per-view scorers: with the trained segmenter on RGB, each view's energy is lower when the
relation holds than when it does not; the energy formulas; and the scorer contract."""

import numpy as np
import pytest
import torch

from consensus.core.ensemble import Ensemble
from consensus.scorers.views.relations import UNSEEN_ENERGY
from consensus.tasks.robot.experiment import view_scorer
from consensus.tasks.robot.ground_truth import relation_holds
from consensus.tasks.robot.relations import Goal, Relation
from consensus.tasks.robot.scene import CLASS_NAMES, DEFAULT_CAMERAS, ObjectPose, PickPlace, SceneSpec, TabletopScene
from consensus.tasks.robot.world_model import SimulatorWorldModel
from consensus.zoo.segmenter import load_segmenter


@pytest.fixture(scope="module")
def segmenter():
    return load_segmenter()


# (subject, relation, reference): where the subject goes so that the relation holds, and so that it fails.
CASES = [
    ("red bowl", "left of", "blue mug", (0.55, -0.15), (0.55, 0.15)),
    ("red bowl", "right of", "blue mug", (0.55, 0.15), (0.55, -0.15)),
    ("red bowl", "in front of", "blue mug", (0.72, 0.0), (0.38, 0.0)),
    ("red bowl", "behind", "blue mug", (0.38, 0.0), (0.72, 0.0)),
    ("red bowl", "on top of", "blue mug", (0.55, 0.0), (0.55, 0.16)),
    ("yellow mug", "on top of", "green bowl", (0.55, 0.0), (0.40, -0.12)),
]


@pytest.mark.parametrize(
    "subject, kind, reference, holds_at, fails_at", CASES, ids=lambda v: v if isinstance(v, str) else None
)
def test_every_view_prefers_the_state_where_the_relation_holds(segmenter, subject, kind, reference, holds_at, fails_at):
    # The reference sits at the workspace centre; the subject starts in a corner.
    spec = SceneSpec((subject, reference), (ObjectPose(0.40, 0.22, 0.3), ObjectPose(0.55, 0.0, 1.0)))
    relation = Relation(subject, kind, reference)
    with TabletopScene(spec) as scene:
        model = SimulatorWorldModel(scene, [c.name for c in DEFAULT_CAMERAS])
        holds, fails = model.predict([PickPlace(subject, *holds_at), PickPlace(subject, *fails_at)])
        for action, expected in ((holds.action, True), (fails.action, False)):  # the states are what they claim
            state = scene.save()
            scene.execute(action)
            assert relation_holds(scene, relation) is expected
            scene.restore(state)
    for camera in DEFAULT_CAMERAS:
        energy = view_scorer(camera, segmenter).energy([holds, fails], Goal((relation,)))
        assert energy.shape == (2,) and energy.dtype == torch.float64
        assert energy[0] < energy[1], f"{camera.name}: {energy.tolist()} for {relation}"


class PaintedSegmenter:
    """A segmentation 'model' that returns labels painted by hand: any Segmenter fits the scorer."""

    class_names = CLASS_NAMES

    def __init__(self, labels):
        self.labels = labels

    def __call__(self, images):
        return np.stack([self.labels] * len(images))


def _square(labels, name, col, row):
    labels[row - 1 : row + 2, col - 1 : col + 2] = CLASS_NAMES.index(name)


def test_energy_formulas_on_painted_masks():
    camera = DEFAULT_CAMERAS[0]  # front: world left (-y) is image left, up is image up
    labels = np.zeros((64, 64), dtype=np.int64)
    _square(labels, "red bowl", 20, 30)
    _square(labels, "blue mug", 40, 30)
    candidate = type("Candidate", (), {"views": {"front": np.zeros((64, 64, 3), np.uint8)}})()
    scorer = view_scorer(camera, PaintedSegmenter(labels))
    left = scorer.energy([candidate], Goal((Relation("red bowl", "left of", "blue mug"),)))
    right = scorer.energy([candidate], Goal((Relation("red bowl", "right of", "blue mug"),)))
    assert left.item() == 0.0  # 20 px to the left is past the margin
    g = np.linalg.norm(scorer.jacobian[:, 1])
    assert right.item() == pytest.approx((0.08 * g + 20.0) / 64, rel=1e-6)  # margin plus the 20 px the wrong way
    hidden = scorer.energy([candidate], Goal((Relation("red bowl", "left of", "green mug"),)))
    assert hidden.item() == UNSEEN_ENERGY  # the green mug is nowhere in the view


def test_scorer_contract_and_errors(segmenter):
    camera = DEFAULT_CAMERAS[1]
    scorer = view_scorer(camera, segmenter)
    assert scorer.name == "view:left" and scorer.modality == "image" and not scorer.differentiable
    image = np.full((64, 64, 3), 200, np.uint8)
    candidate = type("Candidate", (), {"views": {"left": image}})()
    scorer.energy([candidate], Goal((Relation("red bowl", "left of", "blue mug"),)))
    assert (image == 200).all()  # never mutates its input
    with pytest.raises(ValueError, match=r"needs candidates with views\['left'\]"):
        scorer.energy([type("C", (), {"views": {}})()], Goal((Relation("red bowl", "left of", "blue mug"),)))
    ensemble = Ensemble([view_scorer(c, segmenter) for c in DEFAULT_CAMERAS])
    assert ensemble.names == ["view:front", "view:left", "view:right"]


def test_segmenter_without_the_goals_class_is_a_clear_error():
    scorer = view_scorer(DEFAULT_CAMERAS[0], PaintedSegmenter(np.zeros((64, 64), np.int64)))
    scorer.segmenter.class_names = ("background", "red bowl")
    candidate = type("Candidate", (), {"views": {"front": np.zeros((64, 64, 3), np.uint8)}})()
    with pytest.raises(ValueError, match=r"has no class for \['blue mug'\]"):
        scorer.energy([candidate], Goal((Relation("red bowl", "left of", "blue mug"),)))
