"""Accuracies of every condition from the per-question records that the video-QA benchmark writes.

Each condition (the LM alone, steered by one scorer, steered by the ensemble; gradient or
gradient-free feedback) gets its accuracy with a 95% Wilson interval, per question type, and
its mean seconds per answer; the paper's two claims get paired bootstrap intervals over the
questions that both conditions answered.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from consensus.eval.metrics import accuracy, paired_difference

LM_ALONE = "lm alone"
ENSEMBLE = "ensemble"


def condition_name(feedback: str, steered_by: str | None) -> str:
    return LM_ALONE if steered_by is None else f"{feedback}: {steered_by}"


def summarize(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    conditions = list(dict.fromkeys(c for r in records for c in r["correct"]))
    types = sorted({r["type"] for r in records})
    table = {}
    for c in conditions:
        answered = [r for r in records if c in r["correct"]]
        acc = accuracy([r["correct"][c] for r in answered])
        table[c] = {
            "accuracy": acc.value, "low": acc.low, "high": acc.high, "n": acc.total,
            "per_type": {t: accuracy([r["correct"][c] for r in answered if r["type"] == t]).value
                         for t in types if any(r["type"] == t for r in answered)},
            "seconds_per_answer": sum(r["seconds"][c] for r in answered) / len(answered),
        }
    claims = {}
    for feedback in ("rescore", "gradient"):
        ensemble = condition_name(feedback, ENSEMBLE)
        singles = [c for c in conditions if c.startswith(f"{feedback}: ") and c != ensemble]
        if ensemble not in table or not singles:
            continue
        best = max(singles, key=lambda c: table[c]["accuracy"])
        claims[f"{feedback}: ensemble - lm alone"] = _paired(records, ensemble, LM_ALONE)
        claims[f"{feedback}: ensemble - best single ({best.split(': ', 1)[1]})"] = _paired(records, ensemble, best)
    gradient, rescore = condition_name("gradient", ENSEMBLE), condition_name("rescore", ENSEMBLE)
    if gradient in table and rescore in table:
        claims["ensemble: gradient - rescore (same questions)"] = _paired(records, gradient, rescore)
    return {"questions": len(records), "types": types, "conditions": table, "claims": claims}


def _paired(records: Sequence[dict[str, Any]], a: str, b: str) -> dict[str, Any]:
    both = [r for r in records if a in r["correct"] and b in r["correct"]]
    return {**paired_difference([r["correct"][a] for r in both], [r["correct"][b] for r in both]), "n": len(both)}


def markdown(summary: dict[str, Any], title: str) -> str:
    types = summary["types"]
    lines = [f"### {title}", "",
             "| condition | accuracy [95% CI] | n | " + " | ".join(types) + " | s / answer |",
             "| --- | --- | --- | " + " | ".join("---" for _ in types) + " | --- |"]
    for name, row in summary["conditions"].items():
        per_type = " | ".join(f"{100 * row['per_type'][t]:.1f}" if t in row["per_type"] else "–" for t in types)
        lines.append(f"| {name} | {100 * row['accuracy']:.1f} [{100 * row['low']:.1f}, {100 * row['high']:.1f}] "
                     f"| {row['n']} | {per_type} | {row['seconds_per_answer']:.2f} |")
    lines += ["", "| claim | points | 95% paired bootstrap | wins / losses | n |", "| --- | --- | --- | --- | --- |"]
    for claim, d in summary["claims"].items():
        lines.append(f"| {claim} | {d['points']:+.1f} | [{d['low']:+.1f}, {d['high']:+.1f}] "
                     f"| {d['wins']} / {d['losses']} | {d['n']} |")
    return "\n".join(lines) + "\n"
