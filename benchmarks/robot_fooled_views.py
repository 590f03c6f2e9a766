"""Were the single views fooled? For every episode that a single-view policy failed in a robot
benchmark run, replay it (episodes are deterministic given their seed) and score its final state
with every view. A view that was fooled rates the state it stopped in, where the goal does not
hold, better than the other two views rate that same state.

    python benchmarks/robot_fooled_views.py --samples 24 --runs benchmarks/results/robot-samples24

Writes fooled_views.json and fooled_views.md next to the run's episodes.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from types import SimpleNamespace

import torch

from consensus.tasks.robot.episode import run_episode, step_budget
from consensus.tasks.robot.experiment import make_policy, view_scorer
from consensus.tasks.robot.scene import DEFAULT_CAMERAS
from consensus.tasks.robot.data import sample_task
from consensus.zoo.segmenter import load_segmenter

VIEWS = [c.name for c in DEFAULT_CAMERAS]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", required=True, help="a robot benchmark output folder (robot_episodes.jsonl)")
    ap.add_argument("--samples", type=int, required=True, help="the run's candidates per CEM round")
    ap.add_argument("--iterations", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    runs = Path(args.runs)
    rows = [json.loads(line) for line in (runs / "robot_episodes.jsonl").read_text().splitlines() if line.strip()]
    failed = [r for r in rows if r["method"].startswith("view:") and not r["success"] and r["settings"]["samples"] == args.samples]
    segmenter = load_segmenter()
    scorers = {c.name: view_scorer(c, segmenter) for c in DEFAULT_CAMERAS}
    policies = {m: make_policy(m, segmenter, args.samples, args.iterations) for m in {r["method"] for r in failed}}
    cases = []
    for row in failed:
        task = sample_task(row["seed"], row["difficulty"])
        final = {}
        result = run_episode(task.spec, task.goal, policies[row["method"]], step_budget(task.goal), seed=row["seed"],
                             on_step=lambda scene, step, final=final: final.update(views=scene.render(cameras=VIEWS)))
        state = SimpleNamespace(views=final["views"])
        energies = {v: float(s.energy([state], task.goal)[0]) for v, s in scorers.items()}
        own = row["method"].removeprefix("view:")
        others = [e for v, e in energies.items() if v != own]
        cases.append({"seed": row["seed"], "view": own, "replayed_as_logged": result.success == row["success"],
                      "goal": row["goal"], "energies": energies, "fooled": energies[own] < min(others)})
        print(f"seed {row['seed']} {own}: own {energies[own]:.3f}, others {others[0]:.3f} {others[1]:.3f}", flush=True)
    fooled = sum(c["fooled"] for c in cases)
    own = [c["energies"][c["view"]] for c in cases]
    other = [e for c in cases for v, e in c["energies"].items() if v != c["view"]]
    summary = {"run": str(runs), "samples": args.samples, "failed_single_view_episodes": len(cases),
               "replayed_as_logged": sum(c["replayed_as_logged"] for c in cases), "fooled": fooled,
               "median_own_energy": statistics.median(own), "median_other_views_energy": statistics.median(other),
               "cases": cases}
    (runs / "fooled_views.json").write_text(json.dumps(summary, indent=1) + "\n")
    text = (f"# Failed single-view episodes of {runs}, final states scored by every view\n\n"
            f"{len(cases)} failed episodes replayed ({summary['replayed_as_logged']} ended as logged). In {fooled} "
            f"({100 * fooled / max(1, len(cases)):.0f}%) the failing view rates its final state, where the goal does "
            f"not hold, better than both other views do. Median energy of that state: {summary['median_own_energy']:.3f} "
            f"by the failing view, {summary['median_other_views_energy']:.3f} by the other two.\n")
    (runs / "fooled_views.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
