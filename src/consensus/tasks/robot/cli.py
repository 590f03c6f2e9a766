"""``consensus robot --goal "red bowl on top of blue mug"``: run one headless episode.

Saves every camera view of every step as PNG, an animated GIF of the whole episode (arm motions
included), the consensus trace and ``run.json`` in a run folder (``consensus report <folder>`` makes its
HTML report), then prints whether the goal was reached. Exit status 0 when it
was, 1 when the step budget ran out, 2 for a goal or view it does not know, 3 when a model failed.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

from consensus.cli import (HelpFormatter, add_ensemble_options, add_scorer_option, ensemble_options, flags_of,
                           fresh_run_dir, run_manifest, user_scorers, with_user_scorers, with_weights)
from consensus.report.manifest import report_hint
from consensus.tasks.robot.episode import CEM_ROUNDS, CEM_SAMPLES
from consensus.zoo.segmenter import DEFAULT_WEIGHTS

DISPLAY_SIZE = 160  # saved images are re-rendered larger than the 64 px the scorers read
# The scene's DEFAULT_CAMERAS by name, listed here so that `--help` need not load the simulator;
# run() checks the views against the scene's cameras.
VIEWS = ("front", "left", "right")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "robot",
        help="arrange bowls and mugs by spatial relations (MPC by consensus of camera views)",
        description=__doc__,
        formatter_class=HelpFormatter,
    )
    p.add_argument("--goal", required=True, help='e.g. "red bowl on top of blue mug, blue mug left of cyan mug"')
    p.add_argument("--seed", type=int, default=0, help="scene layout and planner seed")
    p.add_argument("--objects", type=int, default=4, help="objects on the table (the goal's, plus random others)")
    p.add_argument("--views", default=",".join(VIEWS), help=f"comma-separated scorer views among {', '.join(VIEWS)}")
    p.add_argument("--policy", choices=("consensus", "random"), default="consensus")
    p.add_argument("--max-steps", type=int, default=None, help="step budget (default: relations + 2)")
    p.add_argument("--samples", type=int, default=CEM_SAMPLES,
                   help="candidate actions per CEM round (stacking needs more than 12)")
    p.add_argument("--iterations", type=int, default=CEM_ROUNDS, help="CEM rounds per step")
    p.add_argument("--segmenter", default=str(DEFAULT_WEIGHTS), help="segmenter weights")
    p.add_argument("--out", default=None, help="output folder (default runs/robot/<time>)")
    p.add_argument("--trace", default=None, help="the consensus trace (JSON lines; default: trace.jsonl in --out)")
    add_scorer_option(p)
    add_ensemble_options(p)
    return p


def run(args: argparse.Namespace) -> int:
    """Run the episode; return 0 if the goal was reached, 1 if not. Bad input raises ValueError."""
    import numpy as np
    from PIL import Image

    from consensus.core.trace import TraceWriter
    from consensus.tasks.robot.episode import ConsensusPolicy, RandomPolicy, run_episode, step_budget
    from consensus.tasks.robot.experiment import build_ensemble
    from consensus.tasks.robot.relations import parse_goal
    from consensus.tasks.robot.scene import DEFAULT_CAMERAS, TabletopScene, random_scene_spec
    from consensus.zoo.segmenter import load_segmenter

    goal = parse_goal(args.goal)
    user = user_scorers(args.scorer)
    cameras = {c.name: c for c in DEFAULT_CAMERAS}
    views = checked_views(args, goal, list(cameras), bool(user))
    out = fresh_run_dir(Path(args.out or f"runs/robot/{time.strftime('%Y%m%d-%H%M%S')}"))
    spec = random_scene_spec(random.Random(args.seed), max(args.objects, len(goal.objects)), required=goal.objects)
    max_steps = args.max_steps if args.max_steps is not None else step_budget(goal)
    print(
        f"goal: {goal}\nscene: {', '.join(spec.objects)}\nviews: {', '.join(views)}; up to {max_steps} steps; output in {out}"
    )

    frames: list[Image.Image] = []

    def snapshot(scene: TabletopScene) -> Image.Image:
        images = scene.render(size=DISPLAY_SIZE)
        return Image.fromarray(np.concatenate([images[c] for c in cameras], axis=1))

    def on_step(scene: TabletopScene, step: int) -> None:
        for name, image in scene.render(size=DISPLAY_SIZE).items():
            Image.fromarray(image).save(out / f"step_{step:02d}_{name}.png")
        frames.extend([snapshot(scene)] * 3)  # hold each observed state a little longer in the GIF

    trace_path = Path(args.trace) if args.trace else out / "trace.jsonl"
    trace_path.unlink(missing_ok=True)
    manifest = run_manifest(args, out, trace_path, task="robot", title=f"robot: {goal}", settings=flags_of(args))
    manifest()
    with TraceWriter(trace_path) as trace:
        if args.policy == "random":
            policy = RandomPolicy()
        else:
            segmenter = load_segmenter(args.segmenter)
            ensemble = build_ensemble([cameras[v] for v in views], segmenter, **ensemble_options(args))
            ensemble = with_user_scorers(with_weights(ensemble, args.weights), user)
            policy = ConsensusPolicy(ensemble, samples=args.samples, iterations=args.iterations, trace=trace)
        result = run_episode(
            spec,
            goal,
            policy,
            max_steps,
            seed=args.seed,
            on_step=on_step,
            on_frame=lambda scene: frames.append(snapshot(scene)),
        )
    for step, action in enumerate(result.actions, start=1):
        energy = f", energy {result.energies[step - 1]:.3f}" if result.energies else ""
        print(f"step {step}: put {action.obj} at ({action.x:.2f}, {action.y:.2f}){energy}")
    frames[0].save(out / "episode.gif", save_all=True, append_images=frames[1:], duration=250, loop=0)
    verdict = "succeeded" if result.success else "failed"
    views_per_step = [{"path": f"step_{step:02d}_{name}.png", "caption": f"after step {step}: {name}"}
                      for step in range(result.steps + 1) for name in cameras
                      if (out / f"step_{step:02d}_{name}.png").exists()]
    manifest(images=[{"path": "episode.gif", "caption": "the episode"}, *views_per_step],
             summary={"goal": str(goal), "result": verdict, "steps": result.steps, "seconds": round(result.seconds, 1),
                      **{f"step {i}": f"put {a.obj} at ({a.x:.2f}, {a.y:.2f})"
                         for i, a in enumerate(result.actions, start=1)}}, state="finished")
    print(f"{verdict} after {result.steps} step(s) in {result.seconds:.1f} s; views and episode.gif in {out}\n"
          f"{report_hint(out)}")
    return 0 if result.success else 1


def checked_views(args: argparse.Namespace, goal, cameras: list[str], user_scorers: bool) -> list[str]:
    """The scorer views asked for, after checking the run's bounds (bad input raises ValueError naming the flag)."""
    from consensus.tasks.robot.scene import MAX_OBJECTS

    if user_scorers and args.policy == "random":
        raise ValueError("--scorer needs --policy consensus; the random policy scores nothing")
    views = [v.strip() for v in args.views.split(",") if v.strip()]
    unknown = [v for v in views if v not in cameras]
    if unknown or not views:
        raise ValueError(f"unknown views {unknown or args.views!r}; choose among {cameras}")
    if not 1 <= args.objects <= MAX_OBJECTS:
        raise ValueError(f"--objects must be between 1 and {MAX_OBJECTS} (what the workspace holds apart), "
                         f"got {args.objects}")
    if len(goal.objects) > MAX_OBJECTS:
        raise ValueError(f"the goal names {len(goal.objects)} objects; the workspace holds at most {MAX_OBJECTS}")
    if args.samples < 1 or args.iterations < 1 or (args.max_steps is not None and args.max_steps < 0):
        raise ValueError("--samples and --iterations must be at least 1, and --max-steps at least 0")
    return views


def main(argv: list[str] | None = None) -> int:
    """Run the subcommand on its own (``python -m consensus.tasks.robot.cli --goal ...``); returns the exit status."""
    from consensus.cli import main as consensus_main

    try:
        consensus_main(["robot", *(sys.argv[1:] if argv is None else argv)])
    except SystemExit as done:
        return int(done.code or 0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
