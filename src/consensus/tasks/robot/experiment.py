"""The robot experiment assembled: per-view scorers over the tabletop's geometry, their ensemble, the policies
of the benchmark, and episodes as items of an evaluation (one per method and seed)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

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


def build_ensemble(cameras: Sequence[Camera], segmenter: Segmenter, **options: Any) -> Ensemble:
    """One scorer per camera, summed raw: their energies are all in image widths (``scorers.views``). ``options``:
    ``Ensemble``'s keywords (the CLI's normalization, nonfinite, combination, spread)."""
    return Ensemble([view_scorer(c, segmenter) for c in cameras], **options)


def make_policy(method: str, segmenter: Segmenter | None, samples: int, iterations: int, **options: Any):
    """``random``, ``ensemble`` (every view) or ``view:<camera>`` (one view), as the benchmark compares them;
    ``options``: the ensemble's keywords (``build_ensemble``)."""
    from consensus.tasks.robot.episode import ConsensusPolicy, RandomPolicy
    from consensus.tasks.robot.scene import DEFAULT_CAMERAS

    if method == "random":
        return RandomPolicy()
    cameras = DEFAULT_CAMERAS if method == "ensemble" else [c for c in DEFAULT_CAMERAS if f"view:{c.name}" == method]
    if not cameras:
        raise ValueError(f"unknown method {method!r}; use random, ensemble or view:<camera>")
    return ConsensusPolicy(build_ensemble(cameras, segmenter, **options), samples=samples, iterations=iterations)


def episode_solver(samples: int, iterations: int, **options: Any):
    """``solve(batch of (method, seed)) -> rows``: episode ``seed`` has ``seed % 3 + 1`` relations and the
    step budget of its goal; the segmenter loads once (in a sharded run, once per worker). ``options``: the
    ensemble's keywords (a normalisation and a conservative combination, say)."""
    from consensus.tasks.robot.data import sample_task
    from consensus.tasks.robot.episode import run_episode, step_budget
    from consensus.zoo.segmenter import load_segmenter

    segmenter = load_segmenter()
    policies: dict[str, Any] = {}

    def solve(batch: Sequence[tuple[str, int]]) -> Iterable[dict[str, Any]]:
        for method, seed in batch:
            if method not in policies:
                policies[method] = make_policy(method, segmenter, samples, iterations, **options)
            task = sample_task(seed, seed % 3 + 1)
            res = run_episode(task.spec, task.goal, policies[method], step_budget(task.goal), seed=seed)
            yield {"method": method, "seed": seed, "difficulty": task.difficulty, "goal": str(task.goal),
                   "success": res.success, "steps": res.steps, "seconds": round(res.seconds, 3)}

    return solve
