"""Robot manipulation benchmark: success rate and steps per episode of random actions, each
single-view scorer, and the multi-view ensemble, over seeded episodes of 1-3 relations.

Episode i uses seed i and i % 3 + 1 relations; every method faces the same scene, goal and
planner seed. One JSON line per (method, episode) goes to robot_episodes.jsonl as it finishes; a
restarted run skips what is there. At the end (and with --report alone) the summary is written
to robot.json and robot.md.

    nohup python benchmarks/robot_benchmark.py > benchmarks/results/robot.log 2>&1 &
    # the same with twice the planning budget per CEM round:
    python benchmarks/robot_benchmark.py --samples 24 --episodes 108 --out benchmarks/results/robot-samples24
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import time
from pathlib import Path

import torch

from consensus.core.ensemble import Ensemble
from consensus.eval.metrics import accuracy
from consensus.tasks.robot.episode import ConsensusPolicy, RandomPolicy, run_episode, step_budget
from consensus.tasks.robot.experiment import view_scorer
from consensus.tasks.robot.scene import DEFAULT_CAMERAS
from consensus.tasks.robot.tasks import sample_task
from consensus.zoo.segmenter import DEFAULT_WEIGHTS, load_segmenter

RESULTS = Path(__file__).resolve().parent / "results"
VIEWS = [c.name for c in DEFAULT_CAMERAS]
METHODS = ["random", *(f"view:{v}" for v in VIEWS), "ensemble"]


def make_policy(method: str, segmenter, samples: int, iterations: int):
    if method == "random":
        return RandomPolicy()
    cameras = DEFAULT_CAMERAS if method == "ensemble" else [c for c in DEFAULT_CAMERAS if f"view:{c.name}" == method]
    return ConsensusPolicy(
        Ensemble([view_scorer(c, segmenter) for c in cameras]), samples=samples, iterations=iterations
    )


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact binomial p-value of wins vs losses among discordant paired episodes."""
    n = wins + losses
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(wins, losses) + 1)) / 2**n
    return min(1.0, 2 * tail)


def summarize(rows: list[dict], config: dict) -> dict:
    by_method: dict[str, dict] = {}
    for method in METHODS:
        mine = [r for r in rows if r["method"] == method]
        if not mine:
            continue
        entry = _rates(mine)
        entry["by_difficulty"] = {str(d): _rates([r for r in mine if r["difficulty"] == d]) for d in (1, 2, 3)}
        # Stacking is where views disagree most (occlusion), so report it apart from directions alone.
        entry["with_on_top_of"] = _rates([r for r in mine if "on top of" in r["goal"]])
        entry["directions_only"] = _rates([r for r in mine if "on top of" not in r["goal"]])
        by_method[method] = entry
    summary = {"config": config, "methods": by_method}
    singles = [m for m in by_method if m.startswith("view:")]
    if "ensemble" in by_method and singles:
        best = max(singles, key=lambda m: by_method[m]["success_rate"])
        ens = {r["seed"]: r["success"] for r in rows if r["method"] == "ensemble"}
        one = {r["seed"]: r["success"] for r in rows if r["method"] == best}
        shared = sorted(set(ens) & set(one))
        wins = sum(ens[s] and not one[s] for s in shared)
        losses = sum(one[s] and not ens[s] for s in shared)
        summary["ensemble_vs_best_single_view"] = {
            "best_single_view": best,
            "paired_episodes": len(shared),
            "ensemble_only": wins,
            "single_only": losses,
            "difference": (sum(ens[s] for s in shared) - sum(one[s] for s in shared)) / max(1, len(shared)),
            "sign_test_p": sign_test(wins, losses),
        }
    return summary


def _rates(rows: list[dict]) -> dict:
    k, n = sum(r["success"] for r in rows), len(rows)
    interval = accuracy([r["success"] for r in rows])
    low, high = interval.low, interval.high
    won = [r["steps"] for r in rows if r["success"]]
    return {
        "episodes": n,
        "successes": k,
        "success_rate": k / n if n else math.nan,
        "ci95": [low, high],
        "mean_steps": sum(r["steps"] for r in rows) / n if n else math.nan,
        "mean_steps_when_successful": sum(won) / len(won) if won else None,
        "mean_seconds": sum(r["seconds"] for r in rows) / n if n else math.nan,
    }


def markdown(summary: dict) -> str:
    c = summary["config"]
    setup = (
        f"{c['episodes']} seeded episodes (seeds 0-{c['episodes'] - 1}; 1, 2 and 3 relations in turn; 4 objects); "
        "step budget = relations + 2. MPC: "
        f"{c['iterations']} CEM rounds of {c['samples']} candidates, top 4 survive each round. World model: the pybullet "
        "simulator (save, execute, render, restore). Scorers: the trained TinyUNet segmenter on each 64 px RGB view. "
        "random: one action per step from the proposer's prior (any object; anywhere, or on another object). "
        "An episode ends when the simulator's state says the goal holds (for every method), or when the budget is "
        "spent; intervals are 95% Wilson."
    )
    header = (
        "| method | success | 95% CI | 1 relation | 2 relations | 3 relations | with on top of | directions only "
        "| steps/episode | steps if solved | s/episode |"
    )
    done = min((m["episodes"] for m in summary["methods"].values()), default=0)
    if done < c["episodes"]:
        setup += (f" **A partial run:** {done} of the {c['episodes']} episodes are done for every method; "
                  "the same command finishes it.")
    lines = ["# Robot manipulation benchmark", "", setup, "", header, "|" + " --- |" * 11]
    for method, m in summary["methods"].items():
        groups = [*(m["by_difficulty"][k] for k in ("1", "2", "3")), m["with_on_top_of"], m["directions_only"]]
        solved = m["mean_steps_when_successful"]
        cells = [
            method,
            f"{100 * m['success_rate']:.1f}% ({m['successes']}/{m['episodes']})",
            f"[{100 * m['ci95'][0]:.1f}, {100 * m['ci95'][1]:.1f}]",
            *(f"{100 * g['success_rate']:.0f}% ({g['successes']}/{g['episodes']})" for g in groups),
            f"{m['mean_steps']:.2f}",
            "-" if solved is None else f"{solved:.2f}",
            f"{m['mean_seconds']:.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    cmp = summary.get("ensemble_vs_best_single_view")
    if cmp:
        lines += [
            "",
            (
                f"Ensemble vs the best single view ({cmp['best_single_view']}), paired over {cmp['paired_episodes']} "
                f"episodes: {100 * cmp['difference']:+.1f} points; solved by the ensemble only: {cmp['ensemble_only']}, "
                f"by the single view only: {cmp['single_only']} (exact sign test p = {cmp['sign_test_p']:.3f})."
            ),
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--episodes", type=int, default=300, help="episodes per method (seeds 0..N-1)")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--samples", type=int, default=12)
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--report", action="store_true", help="only rewrite the summary from the finished episodes")
    args = ap.parse_args()
    torch.set_num_threads(1)  # small shared machines
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "robot_episodes.jsonl"
    setup = {
        "samples": args.samples,
        "iterations": args.iterations,
        "segmenter_sha256": hashlib.sha256(DEFAULT_WEIGHTS.read_bytes()).hexdigest()[:16],
    }
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.exists() else []
    rows = [r for r in rows if all(r.get(k) == v for k, v in setup.items())]  # lines of another setup do not count
    done = {(r["method"], r["seed"]) for r in rows}
    config = {"episodes": args.episodes, **setup}
    methods = [m for m in args.methods.split(",") if m]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise SystemExit(f"unknown methods {unknown}; choose among {METHODS}")
    if not args.report:
        segmenter = load_segmenter()
        policies = {m: make_policy(m, segmenter, args.samples, args.iterations) for m in methods}
        with log.open("a") as f:
            for seed in range(args.episodes):  # episodes outermost: a partial run stays balanced across methods
                todo = [m for m in methods if (m, seed) not in done]
                if not todo:
                    continue
                task = sample_task(seed, seed % 3 + 1)
                for method in todo:
                    res = run_episode(task.spec, task.goal, policies[method], step_budget(task.goal), seed=seed)
                    row = {
                        "method": method,
                        "seed": seed,
                        "difficulty": task.difficulty,
                        "goal": str(task.goal),
                        "success": res.success,
                        "steps": res.steps,
                        "seconds": round(res.seconds, 3),
                        **setup,
                    }
                    f.write(json.dumps(row) + "\n")
                    f.flush()
                    rows.append(row)
                    print(
                        f"{time.strftime('%H:%M:%S')} seed {seed} ({task.difficulty} rel) {method}: "
                        f"{'success' if res.success else 'fail'} in {res.steps} steps, {res.seconds:.1f} s",
                        flush=True,
                    )
    rows = [r for r in rows if r["seed"] < args.episodes]
    summary = summarize(rows, config)
    (out / "robot.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "robot.md").write_text(markdown(summary))
    print(markdown(summary))


if __name__ == "__main__":
    main()
