"""The robot-manipulation experiment: MPC over a world model, actions chosen by per-view scorers.

A KUKA arm with a suction tool must arrange coloured bowls and mugs so that spatial relations
given as text hold. The generator proposes pick-and-place actions (refined by the cross-entropy
method) and the world model, the pybullet simulator saved and restored, predicts the camera views
after each; one scorer per camera segments its view with a trained segmenter and measures the
relations there; the Ensemble sums the views and the lowest-energy action is executed.

Modules: ``scene`` (simulator, cameras, actions), ``relations`` (goal text), ``ground_truth``
(success from simulator state), ``tasks`` (seeded feasible tasks), ``world_model`` (predictions
and the CEM proposer), ``segmenter``, ``scorers`` (per-view energies), ``episode`` (closed loop),
``cli`` (``consensus robot``).
"""

from consensus.robot.episode import ConsensusPolicy, EpisodeResult, RandomPolicy, run_episode, step_budget
from consensus.robot.ground_truth import goal_satisfied, relation_holds
from consensus.robot.relations import Goal, GoalParseError, Relation, parse_goal
from consensus.robot.scene import DEFAULT_CAMERAS, OBJECT_NAMES, Camera, PickPlace, SceneSpec, TabletopScene
from consensus.robot.scorers import ViewScorer
from consensus.robot.segmenter import Segmenter, TorchSegmenter, load_segmenter
from consensus.robot.tasks import Task, sample_task
from consensus.robot.world_model import CEMProposer, Prediction, SimulatorWorldModel

__all__ = [
    "DEFAULT_CAMERAS",
    "OBJECT_NAMES",
    "CEMProposer",
    "Camera",
    "ConsensusPolicy",
    "EpisodeResult",
    "Goal",
    "GoalParseError",
    "PickPlace",
    "Prediction",
    "RandomPolicy",
    "Relation",
    "SceneSpec",
    "Segmenter",
    "SimulatorWorldModel",
    "TabletopScene",
    "Task",
    "TorchSegmenter",
    "ViewScorer",
    "goal_satisfied",
    "load_segmenter",
    "parse_goal",
    "relation_holds",
    "run_episode",
    "sample_task",
    "step_budget",
]
