"""The closed loop: plan an action, execute it, observe, re-plan, until the goal holds or the step
budget is spent.

Two policies share one interface, ``act(scene, goal, generator) -> (action, info)``:

- ``RandomPolicy``: the generator alone, one pick-and-place from its prior per step.
- ``ConsensusPolicy``: model-predictive control by consensus (DESIGN.md §1, gradient-free): the
  CEM proposer rolls candidate actions through the world model, the Ensemble of view scorers
  gives each predicted state an energy, TopK survivors seed the next round, and the lowest-energy
  action of the last round is executed.

The episode ends when the simulator's ground truth says the goal holds (the environment's done
signal, as in Ravens); the policies never read it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from consensus.ensemble import Ensemble
from consensus.loop import Budget, run_consensus
from consensus.robot.ground_truth import goal_satisfied
from consensus.robot.relations import Goal
from consensus.robot.scene import PickPlace, SceneSpec, TabletopScene
from consensus.robot.world_model import CEMProposer, SimulatorWorldModel, random_action
from consensus.selection import TopK
from consensus.trace import TraceWriter


class RandomPolicy:
    """One pick-and-place per step drawn from the proposer's prior (its first round, unscored)."""

    name = "random"

    def act(self, scene: TabletopScene, goal: Goal, generator: torch.Generator) -> tuple[PickPlace, dict[str, Any]]:
        return random_action(scene, generator), {}


class ConsensusPolicy:
    """MPC whose action is chosen by the consensus of per-view scorers.

    Args:
        ensemble: scorers that each read one camera (``scorer.camera.name``), e.g. ViewScorers.
        samples: candidates per CEM round; ``iterations`` rounds; ``elites`` survivors per round.
        trace: optional TraceWriter receiving every round (candidates, each view's energies).
    """

    def __init__(
        self,
        ensemble: Ensemble,
        samples: int = 12,
        iterations: int = 3,
        elites: int = 4,
        trace: TraceWriter | None = None,
    ):
        try:
            self.cameras = list(dict.fromkeys(s.camera.name for s in ensemble.scorers))
        except AttributeError as err:
            raise TypeError(
                "every scorer of a ConsensusPolicy must read one camera (have .camera), like ViewScorer"
            ) from err
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
        proposer = CEMProposer(SimulatorWorldModel(scene, self.cameras), samples=self.samples)
        result = run_consensus(
            proposer,
            self.ensemble,
            goal,
            select=TopK(self.elites),
            budget=Budget(iterations=self.iterations),
            seed=int(torch.randint(2**31, (1,), generator=generator)),
            trace=self.trace,
        )
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
