"""The robot-manipulation experiment: MPC over a world model, actions chosen by per-view scorers.

A KUKA arm with a suction tool must arrange coloured bowls and mugs so that spatial relations
given as text hold. The generator proposes pick-and-place actions (refined by the cross-entropy
method) and the world model, the pybullet simulator saved and restored, predicts the camera views
after each; one scorer per camera segments its view with a trained segmenter and measures the
relations there; the Ensemble sums the views and the lowest-energy action is executed.

Modules: ``scene`` (simulator, cameras, actions), ``relations`` (goal text), ``ground_truth``
(success from simulator state), ``data`` (seeded feasible tasks), ``world_model`` (the simulator as
world model and the pick-and-place action space for ``generators.planning.CEMSteps``), ``experiment``
(per-view scorers of ``scorers.views`` over the tabletop), ``episode`` (closed loop), ``cli``
(``consensus robot``). The segmenter lives in the zoo.
"""

from consensus.tasks.robot.episode import ConsensusPolicy, EpisodeResult, RandomPolicy, run_episode, step_budget
from consensus.tasks.robot.experiment import build_ensemble, view_scorer
from consensus.tasks.robot.ground_truth import goal_satisfied, relation_holds
from consensus.tasks.robot.relations import Goal, GoalParseError, Relation, parse_goal
from consensus.tasks.robot.scene import DEFAULT_CAMERAS, OBJECT_NAMES, Camera, PickPlace, SceneSpec, TabletopScene
from consensus.tasks.robot.data import Task, sample_task
from consensus.tasks.robot.world_model import PickPlaceSpace, Prediction, SimulatorWorldModel

__all__ = [
    "DEFAULT_CAMERAS",
    "OBJECT_NAMES",
    "Camera",
    "ConsensusPolicy",
    "EpisodeResult",
    "Goal",
    "GoalParseError",
    "PickPlace",
    "PickPlaceSpace",
    "Prediction",
    "RandomPolicy",
    "Relation",
    "SceneSpec",
    "SimulatorWorldModel",
    "TabletopScene",
    "Task",
    "build_ensemble",
    "goal_satisfied",
    "parse_goal",
    "relation_holds",
    "run_episode",
    "sample_task",
    "step_budget",
    "view_scorer",
]
