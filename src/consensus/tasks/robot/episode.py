"""The closed loop: plan an action, execute it, observe, re-plan, until the goal holds or the step
budget is spent.

Two policies share one interface, ``act(scene, goal, generator) -> (action, info)``:

- ``RandomPolicy``: the generator alone, one pick-and-place from its prior per step.
- ``ConsensusPolicy``: model-predictive control by consensus (gradient-free): the
  CEM step (``generators.planning.CEMSteps``) rolls candidate actions through the world model, the
  Ensemble of view scorers gives each predicted state an energy, TopK survivors seed the next round,
  and the lowest-energy action of the last round is executed.

The episode ends when the simulator's ground truth says the goal holds (the environment's done
signal, as in Ravens); the policies never read it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from consensus.core.budget import Budget
from consensus.core.engine import run_consensus
from consensus.core.ensemble import Ensemble
from consensus.core.feedback import TopK
from consensus.core.trace import TraceWriter
from consensus.generators.planning import CEMSteps
from consensus.tasks.robot.ground_truth import goal_satisfied
from consensus.tasks.robot.relations import Goal
from consensus.tasks.robot.scene import PickPlace, SceneSpec, TabletopScene
from consensus.tasks.robot.world_model import PickPlaceSpace, SimulatorWorldModel, random_action


class RandomPolicy:
    """One pick-and-place per step drawn from the proposer's prior (its first round, unscored)."""

    name = "random"

    def act(self, scene: TabletopScene, goal: Goal, generator: torch.Generator) -> tuple[PickPlace, dict[str, Any]]:
        return random_action(scene, generator), {}


# Candidate actions per CEM round and rounds per action. 24, not 12: stacking one object on another needs them (the
# ensemble solved 89.8% of 108 episodes with 24 against 83.7% of 300 with 12; benchmarks/results/robot-samples24).
CEM_SAMPLES, CEM_ROUNDS = 24, 3


class ConsensusPolicy:
    """MPC whose action is chosen by the consensus of per-view scorers.

    Args:
        ensemble: the scorers; those that read one camera (``scorer.camera.name``, ViewScorers) say which
            views the world model renders; others (a user's ``--scorer``) read the same predictions.
        samples: candidates per CEM round; ``iterations`` rounds; ``elites`` survivors per round.
        trace: optional TraceWriter receiving every round (candidates, each view's energies).
    """

    def __init__(
        self,
        ensemble: Ensemble,
        samples: int = CEM_SAMPLES,
        iterations: int = CEM_ROUNDS,
        elites: int = 4,
        trace: TraceWriter | None = None,
    ):
        self.cameras = list(dict.fromkeys(s.camera.name for s in ensemble.scorers if hasattr(s, "camera")))
        if not self.cameras:
            raise TypeError("a ConsensusPolicy needs at least one scorer that reads a camera (has .camera), "
                            "like ViewScorer")
        self.actions = 0  # actions chosen so far: each is one engine run, tagged in the trace
        self.ensemble, self.samples, self.iterations, self.elites, self.trace = (
            ensemble,
            samples,
            iterations,
            elites,
            trace,
        )

    @property
    def name(self) -> str:
        return "+".join(self.ensemble.names)

    def act(self, scene: TabletopScene, goal: Goal, generator: torch.Generator) -> tuple[PickPlace, dict[str, Any]]:
        steps = CEMSteps(SimulatorWorldModel(scene, self.cameras), PickPlaceSpace(scene), samples=self.samples)
        result = run_consensus(
            steps,
            self.ensemble,
            goal,
            feedback=TopK(self.elites),
            budget=Budget(iterations=self.iterations),
            seed=int(torch.randint(2**31, (1,), generator=generator)),
            trace=self.trace,
            item=f"action {self.actions}",
        )
        self.actions += 1
        return result.best.action, {"energy": result.best_energy, "seconds": result.seconds}


@dataclass
class EpisodeResult:
    success: bool
    steps: int
    seconds: float
    actions: list[PickPlace] = field(default_factory=list)
    energies: list[float] = field(default_factory=list)


def run_episode(
    spec: SceneSpec,
    goal: Goal,
    policy: RandomPolicy | ConsensusPolicy,
    max_steps: int,
    seed: int = 0,
    on_step: Callable[[TabletopScene, int], None] | None = None,
    on_frame: Callable[[TabletopScene], None] | None = None,
) -> EpisodeResult:
    """Run one episode from a fresh scene; ``on_step(scene, step)`` sees every observed state
    (step 0 is the start), ``on_frame(scene)`` every waypoint of the arm's motions."""
    start = time.perf_counter()
    generator = torch.Generator().manual_seed(seed)
    result = EpisodeResult(success=False, steps=0, seconds=0.0)
    with TabletopScene(spec) as scene:
        if on_step:
            on_step(scene, 0)
        result.success = goal_satisfied(scene, goal)
        while not result.success and result.steps < max_steps:
            action, info = policy.act(scene, goal, generator)
            scene.execute(action, on_frame=(lambda: on_frame(scene)) if on_frame else None)
            result.steps += 1
            result.actions.append(action)
            if "energy" in info:
                result.energies.append(info["energy"])
            if on_step:
                on_step(scene, result.steps)
            result.success = goal_satisfied(scene, goal)
    result.seconds = time.perf_counter() - start
    return result


def step_budget(goal: Goal) -> int:
    """Steps allowed for a goal: one per relation, plus two to recover from mistakes."""
    return len(goal.relations) + 2
