"""Robot manipulation benchmark: success rate and steps per episode of random actions, each
single-view scorer, and the multi-view ensemble, over seeded episodes of 1-3 relations.

Episode i uses seed i and i % 3 + 1 relations; every method faces the same scene, goal and
planner seed. One JSON line per (method, episode) goes to robot_episodes.jsonl through the one
resumable harness (consensus.eval.harness): a restarted run skips what is there, and a file of
another setting is refused. At the end (and with --report alone) the package's report
(consensus.tasks.robot.report) is written to robot.json and robot.md.

    # the committed 300 episodes, at half the task's planning budget per CEM round:
    nohup python benchmarks/robot_benchmark.py --samples 12 > benchmarks/results/robot.log 2>&1 &
    # at the task's budget (CEM_SAMPLES, the CLI's default):
    python benchmarks/robot_benchmark.py --samples 24 --episodes 108 --out benchmarks/results/robot-samples24
    # the conservative combinations against the sum, paired on the committed run's episodes:
    python benchmarks/robot_benchmark.py --samples 12 --episodes 300 --methods ensemble --normalization zscore \
        --combination worst --out benchmarks/results/robot-worst
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
from pathlib import Path

import torch

from consensus.core.ensemble import COMBINATIONS, check_combination
from consensus.distributed.sharded import add_ray_options, connect, sharded
from consensus.eval.metrics import paired_difference
from consensus.eval.harness import read_results, run_resumable
from consensus.tasks.robot.episode import CEM_ROUNDS, CEM_SAMPLES
from consensus.tasks.robot.experiment import episode_solver
from consensus.tasks.robot.report import METHODS, markdown, summarize
from consensus.zoo.segmenter import DEFAULT_WEIGHTS

RESULTS = Path(__file__).resolve().parent / "results"
ENSEMBLE_DEFAULTS = {"normalization": "none", "combination": "sum", "spread": 1.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--episodes", type=int, default=300, help="episodes per method (seeds 0..N-1)")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--samples", type=int, default=CEM_SAMPLES, help="candidate actions per CEM round")
    ap.add_argument("--iterations", type=int, default=CEM_ROUNDS, help="CEM rounds per action")
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--report", action="store_true", help="only rewrite the summary from the finished episodes")
    ap.add_argument("--normalization", default="none", choices=("none", "zscore", "rank", "minmax"),
                    help="how the ensemble normalises each view's energies across a CEM round's candidates")
    ap.add_argument("--combination", default="sum", choices=COMBINATIONS,
                    help="the ensemble's combination: the weighted sum, or a conservative one (needs a normalisation)")
    ap.add_argument("--spread", type=float, default=1.0, help="λ of --combination uncertainty")
    ap.add_argument("--versus", default=None, metavar="FOLDER",
                    help="another run's folder: each method's success against that run's, paired over the seeds both "
                         "ran (e.g. a conservative combination against the committed summed ensemble)")
    add_ray_options(ap, "episodes")
    args = ap.parse_args()
    check_combination(args.combination, args.normalization, args.spread)
    torch.set_num_threads(1)  # small shared machines
    out = Path(args.out)
    log = out / "robot_episodes.jsonl"
    settings = {
        "samples": args.samples,
        "iterations": args.iterations,
        "segmenter_sha256": hashlib.sha256(DEFAULT_WEIGHTS.read_bytes()).hexdigest()[:16],
    }
    # the ensemble's options where they differ from the summed raw energies of the committed runs, whose files
    # then still resume
    options = {k: getattr(args, k) for k, default in ENSEMBLE_DEFAULTS.items() if getattr(args, k) != default}
    settings.update(options)
    methods = [m for m in args.methods.split(",") if m]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise SystemExit(f"unknown methods {unknown}; choose among {METHODS}")
    # Episodes outermost: a partial run stays balanced across methods.
    episodes = [(method, seed) for seed in range(args.episodes) for method in methods]
    if args.report:
        rows = [r for r in read_results(log) if r["seed"] < args.episodes]
    else:
        solve = executor = None
        if args.ray:  # every worker loads the segmenter once; the file gets each episode exactly once
            connect(args.ray, num_cpus=args.workers)
            executor = sharded(functools.partial(episode_solver, args.samples, args.iterations, **options),
                               args.workers)
        else:
            solve = episode_solver(args.samples, args.iterations, **options)
        rows = run_resumable(episodes, lambda e: f"{e[0]}/{e[1]}", solve, log, settings=settings,
                             correct=lambda r: r["success"], description="robot episodes", executor=executor)
    summary = summarize(rows, {"episodes": args.episodes, **settings})
    if args.versus:
        summary["versus"] = {"run": args.versus, "methods": versus(rows, read_results(Path(args.versus) / log.name))}
    (out / "robot.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "robot.md").write_text(markdown(summary))
    print(markdown(summary))
    for method, v in summary.get("versus", {}).get("methods", {}).items():
        print(f"{method} against {args.versus}, {v['episodes']} paired episodes: {v['here']} against {v['there']} "
              f"solved, {v['points']:+.1f} points [{v['low']:+.1f}, {v['high']:+.1f}]")


def versus(rows: list[dict], other: list[dict]) -> dict[str, dict]:
    """Per method, success here minus success in the other run, paired over the seeds both ran."""
    theirs = {(r["method"], r["seed"]): r["success"] for r in other}
    out = {}
    for method in sorted({r["method"] for r in rows}):
        pairs = [(r["success"], theirs[method, r["seed"]]) for r in rows
                 if r["method"] == method and (method, r["seed"]) in theirs]
        if pairs:
            out[method] = {"episodes": len(pairs), "here": sum(a for a, _ in pairs), "there": sum(b for _, b in pairs),
                           **paired_difference([a for a, _ in pairs], [b for _, b in pairs])}
    return out


if __name__ == "__main__":
    main()
