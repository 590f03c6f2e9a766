"""The robot benchmark's report: success rates with Wilson intervals by method and difficulty, and the
ensemble against its best single view, paired over episodes (paired bootstrap and exact sign test)."""

from __future__ import annotations

import math
from typing import Any

from consensus.eval.metrics import accuracy, paired_difference, sign_test
from consensus.tasks.robot.scene import DEFAULT_CAMERAS

METHODS = ["random", *(f"view:{c.name}" for c in DEFAULT_CAMERAS), "ensemble"]


def summarize(rows: list[dict[str, Any]], config: dict[str, Any]) -> dict[str, Any]:
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
            "paired_bootstrap": paired_difference([ens[s] for s in shared], [one[s] for s in shared]),
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
                f"episodes: {100 * cmp['difference']:+.1f} points [{cmp['paired_bootstrap']['low']:+.1f}, "
                f"{cmp['paired_bootstrap']['high']:+.1f}] (paired bootstrap); solved by the ensemble only: "
                f"{cmp['ensemble_only']}, "
                f"by the single view only: {cmp['single_only']} (exact sign test p = {cmp['sign_test_p']:.3f})."
            ),
        ]
    return "\n".join(lines) + "\n"
