"""The world model (the simulator, saved and restored) predicts what execution then produces,
and leaves the scene as it found it; the CEM step refines around its survivors."""

import numpy as np
import torch

from consensus.tasks.robot.scene import DEFAULT_CAMERAS, ObjectPose, PickPlace, SceneSpec, TabletopScene
from consensus.generators.planning import ActionSpace, CEMSteps, WorldModel
from consensus.tasks.robot.world_model import PickPlaceSpace, SimulatorWorldModel

SPEC = SceneSpec(
    ("red bowl", "blue mug", "cyan mug"), (ObjectPose(0.65, -0.15), ObjectPose(0.65, 0.10), ObjectPose(0.42, -0.12))
)


def test_prediction_matches_execution_and_restores_the_scene():
    with TabletopScene(SPEC) as scene:
        before = scene.render()
        model = SimulatorWorldModel(scene, ["front", "left"])
        action = PickPlace("red bowl", 0.45, 0.15)
        (prediction,) = model.predict([action])
        assert prediction.reachable and set(prediction.views) == {"front", "left"}
        for name, image in scene.render().items():  # predicting changed nothing
            assert np.array_equal(image, before[name])
        assert not np.array_equal(prediction.views["front"], before["front"])
        scene.execute(action)
        assert np.allclose(scene.position("red bowl")[:2], [0.45, 0.15], atol=0.01)
        after = scene.render(["front", "left"])
        for name in ("front", "left"):  # the prediction is what execution produced (pybullet is deterministic)
            assert np.mean(after[name] != prediction.views[name]) < 0.01


def test_unreachable_action_changes_nothing():
    with TabletopScene(SPEC, cameras=()) as scene:
        before = scene.position("red bowl")
        assert not scene.execute(PickPlace("red bowl", 1.6, 0.0))  # beyond the arm's reach
        assert np.allclose(scene.position("red bowl"), before)


def test_cem_keeps_survivors_and_samples_near_them():
    with TabletopScene(SPEC, cameras=DEFAULT_CAMERAS[:1]) as scene:
        world, space = SimulatorWorldModel(scene, ["front"]), PickPlaceSpace(scene, switch=0.0)
        assert isinstance(world, WorldModel) and isinstance(space, ActionSpace)  # the planning protocols
        proposer = CEMSteps(world, space, samples=8, sigma=0.02)
        gen = torch.Generator().manual_seed(0)
        first = proposer(None, None, gen).candidates
        assert len(first) == 8 and all(p.round == 0 for p in first)
        parents = first[:2]
        second = proposer(None, parents, gen).candidates
        assert second[:2] == parents and len(second) == 8
        for k, p in enumerate(second[2:]):
            parent = parents[k % 2].action
            assert p.round == 1 and p.action.obj == parent.obj
            assert np.hypot(p.action.x - parent.x, p.action.y - parent.y) < 0.1
