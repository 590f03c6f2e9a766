"""The ground-truth check reads relations from the simulator's state, and tasks are unmet at the start."""

import pytest

from consensus.tasks.robot.ground_truth import goal_satisfied, relation_holds
from consensus.tasks.robot.relations import Goal, Relation, parse_goal
from consensus.tasks.robot.scene import ObjectPose, PickPlace, SceneSpec, TabletopScene
from consensus.tasks.robot.data import sample_task

# From the viewer (+x): the red bowl is left (-y) of the blue mug and nearer the viewer than the cyan mug.
SPEC = SceneSpec(
    ("red bowl", "blue mug", "cyan mug"), (ObjectPose(0.65, -0.15), ObjectPose(0.65, 0.10), ObjectPose(0.42, -0.12))
)


@pytest.fixture(scope="module")
def scene():
    with TabletopScene(SPEC, cameras=()) as s:
        yield s


def test_directions_follow_the_viewers_frame(scene):
    assert relation_holds(scene, Relation("red bowl", "left of", "blue mug"))
    assert relation_holds(scene, Relation("blue mug", "right of", "red bowl"))
    assert not relation_holds(scene, Relation("blue mug", "left of", "red bowl"))
    assert relation_holds(scene, Relation("red bowl", "in front of", "cyan mug"))
    assert relation_holds(scene, Relation("cyan mug", "behind", "red bowl"))
    assert not relation_holds(scene, Relation("red bowl", "behind", "cyan mug"))
    # 3 cm apart in x is within the 4 cm margin: neither in front nor behind.
    assert not relation_holds(scene, Relation("red bowl", "left of", "cyan mug"))


def test_on_top_of_holds_only_after_stacking(scene):
    on_top = Relation("red bowl", "on top of", "blue mug")
    assert not relation_holds(scene, on_top)
    state = scene.save()
    x, y, _ = scene.position("blue mug")
    assert scene.execute(PickPlace("red bowl", x, y))
    assert relation_holds(scene, on_top)
    assert not relation_holds(scene, Relation("blue mug", "on top of", "red bowl"))
    # Stacked objects are neither left nor right of each other.
    assert not relation_holds(scene, Relation("red bowl", "left of", "blue mug"))
    scene.restore(state)
    assert not relation_holds(scene, on_top)


def test_goal_needs_every_relation(scene):
    assert goal_satisfied(scene, parse_goal("red bowl left of blue mug, cyan mug behind red bowl"))
    assert not goal_satisfied(scene, parse_goal("red bowl left of blue mug, cyan mug in front of red bowl"))


def test_object_not_in_scene_is_a_clear_error(scene):
    with pytest.raises(
        ValueError, match="'green mug' is not in the scene; the scene holds red bowl, blue mug, cyan mug"
    ):
        relation_holds(scene, Relation("green mug", "left of", "red bowl"))


def test_tasks_are_seeded_and_start_unmet():
    for seed, n in [(0, 1), (1, 2), (2, 3)]:
        task = sample_task(seed, n)
        assert task == sample_task(seed, n) and task.difficulty == n
        with TabletopScene(task.spec, cameras=()) as s:
            assert not any(relation_holds(s, r) for r in task.goal.relations)
        pairs = [frozenset((r.subject, r.reference)) for r in task.goal.relations]
        assert len(set(pairs)) == n
    assert isinstance(sample_task(0, 1).goal, Goal)
