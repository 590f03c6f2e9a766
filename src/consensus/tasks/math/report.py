"""Accuracies of every method from the per-problem records that the math benchmark writes.

Every method is scored with strict and flexible answer extraction side by side, with 95%
Wilson intervals; differences between methods get a paired bootstrap interval over problems.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from consensus.core.ensemble import Normalization
from consensus.core.weighting import select_with_weights
from consensus.eval.metrics import accuracy, majority, paired_difference
from consensus.scorers.text.answers import extract_flexible, extract_strict, is_correct

EXTRACTORS = {"strict": extract_strict, "flexible": extract_flexible}


def _argmin(values: Sequence[float | None]) -> int:
    finite = [(v, i) for i, v in enumerate(values) if v is not None]
    return min(finite)[1] if finite else 0


FITTED_SOLUTION = "ensemble solution level, dev-fitted weights"
FITTED_STEP = "ensemble step level, dev-fitted weights"


@dataclass(frozen=True)
class Fitted:
    """Ensemble weights fitted on development problems (``consensus.core.weighting.fit_weights``)."""

    names: list[str]
    weights: list[float]
    normalization: Normalization
    dev_problems: int


def method_outcomes(record: dict[str, Any], extraction: str, fitted: Fitted | None = None) -> dict[str, bool]:
    """Whether each method answered this problem right, under one answer extraction. With ``fitted``
    weights, also the solution-level ensemble that uses them (chosen from the stored energies) and,
    when the record has its ``step_level_fitted`` run, the step-level one."""
    extract = EXTRACTORS[extraction]

    def right(text: str | None) -> bool:
        return text is not None and is_correct(extract(text), record["gold"])

    samples = record["samples"]
    outcomes = {
        "greedy": right(record["greedy"]["text"]),
        "single sample": right(samples[0]),
        f"self-consistency (maj@{len(samples)})": is_correct(majority([extract(s) for s in samples]), record["gold"]),
    }
    for name, energies in record["energies"].items():
        if name != "ensemble":
            outcomes[f"best-of-{len(samples)}: {name}"] = right(samples[_argmin(energies)])
    outcomes["ensemble, solution level"] = right(record["solution_level"]["text"])
    outcomes["ensemble, step level"] = right(record["step_level"]["text"])
    if fitted is not None:
        outcomes[FITTED_SOLUTION] = right(samples[select_with_weights(record["energies"], fitted.names,
                                                                      fitted.weights, fitted.normalization)])
        if "step_level_fitted" in record:
            outcomes[FITTED_STEP] = right(record["step_level_fitted"]["text"])
    outcomes[f"pass@{len(samples)} (ceiling)"] = any(right(s) for s in samples)
    return outcomes


def method_cost(record: dict[str, Any], method: str) -> tuple[int, float]:
    """(generator tokens, wall seconds) that a method spent on this problem."""
    sol = record["solution_level"]["seconds"]
    sampling = sol["generator"] + sol["loop"]
    if method == "greedy":
        return record["greedy"]["tokens"], record["greedy"]["seconds"]
    if method == "single sample":
        n = len(record["samples"])
        return record["sample_tokens"] // n, sampling / n
    if method.startswith("self-consistency"):
        return record["sample_tokens"], sampling + sol["AnswerAgreement"]
    if method.startswith("best-of-"):
        return record["sample_tokens"], sampling + sol[method.split(": ", 1)[1]]
    if method in ("ensemble, solution level", FITTED_SOLUTION) or method.startswith("pass@"):
        return record["sample_tokens"], sol["total"]
    if method in ("ensemble, step level", FITTED_STEP):
        step = record["step_level" if method == "ensemble, step level" else "step_level_fitted"]
        return step["tokens"], step["seconds"]["total"]
    raise KeyError(method)


def summarize(records: Sequence[dict[str, Any]], fitted: Fitted | None = None) -> dict[str, Any]:
    if not records:
        raise ValueError("no records to summarise")
    table, outcomes = {}, {}
    for extraction in EXTRACTORS:
        per_problem = [method_outcomes(r, extraction, fitted) for r in records]
        outcomes[extraction] = {m: [o[m] for o in per_problem] for m in per_problem[0]}
    for method in outcomes["strict"]:
        costs = [method_cost(r, method) for r in records]
        table[method] = {
            "strict": accuracy(outcomes["strict"][method]).__dict__,
            "flexible": accuracy(outcomes["flexible"][method]).__dict__,
            "tokens_per_problem": sum(c[0] for c in costs) / len(records),
            "seconds_per_problem": sum(c[1] for c in costs) / len(records),
        }
    flex = outcomes["flexible"]
    singles = [m for m in flex if m.startswith("best-of-")]
    best_single = max(singles, key=lambda m: sum(flex[m]))
    loop = sum(r["solution_level"]["seconds"]["loop"] + r["step_level"]["seconds"]["loop"] for r in records)
    total = sum(r["solution_level"]["seconds"]["total"] + r["step_level"]["seconds"]["total"] for r in records)
    claims = {
        "ensemble solution level - greedy": paired_difference(flex["ensemble, solution level"], flex["greedy"]),
        "ensemble step level - greedy": paired_difference(flex["ensemble, step level"], flex["greedy"]),
        f"ensemble solution level - best single scorer ({best_single})":
            paired_difference(flex["ensemble, solution level"], flex[best_single]),
    }
    for method in (FITTED_SOLUTION, FITTED_STEP):
        if method in flex:
            claims[f"{method} - best single scorer ({best_single})"] = paired_difference(flex[method], flex[best_single])
    return {
        "problems": len(records),
        "methods": table,
        "claims (flexible extraction)": claims,
        "dev_fitted_weights": None if fitted is None else {**dict(zip(fitted.names, fitted.weights)),
                                                           "dev_problems": fitted.dev_problems},
        "loop_overhead_fraction": loop / total if total else 0.0,
    }


def markdown(summary: dict[str, Any], title: str) -> str:
    lines = [f"### {title}", "", f"{summary['problems']} problems; accuracy with 95% Wilson intervals.", "",
             "| method | strict | flexible | generator tokens / problem | seconds / problem |",
             "| --- | --- | --- | --- | --- |"]
    for method, row in summary["methods"].items():
        cells = []
        for extraction in ("strict", "flexible"):
            a = row[extraction]
            cells.append(f"{100 * a['correct'] / a['total']:.1f} [{100 * a['low']:.1f}, {100 * a['high']:.1f}]")
        lines.append(f"| {method} | {cells[0]} | {cells[1]} | {row['tokens_per_problem']:.0f} | "
                     f"{row['seconds_per_problem']:.1f} |")
    lines += ["", "| claim (flexible) | points | 95% paired bootstrap | wins / losses |", "| --- | --- | --- | --- |"]
    for claim, d in summary["claims (flexible extraction)"].items():
        lines.append(f"| {claim} | {d['points']:+.1f} | [{d['low']:+.1f}, {d['high']:+.1f}] | {d['wins']} / {d['losses']} |")
    if summary.get("dev_fitted_weights"):
        fitted = dict(summary["dev_fitted_weights"])
        dev = fitted.pop("dev_problems")
        lines += ["", f"Dev-fitted weights (from {dev} development problems, disjoint from these; "
                  "`consensus.core.weighting`): " + ", ".join(f"{n} {w:.2f}" for n, w in fitted.items()) + "."]
    lines += ["", (f"Loop overhead (wall time outside the generator and the scorers): "
                   f"{100 * summary['loop_overhead_fraction']:.2f}% of the consensus runs' time.")]
    return "\n".join(lines) + "\n"
