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


@dataclass(frozen=True)
class Fitted:
    """Ensemble weights from development problems: ``kind`` "dev-fitted" (``fit_weights``, from their
    labels) or "unlabelled" (``fit_unlabelled_weights``, from their energies alone)."""

    names: list[str]
    weights: list[float]
    normalization: Normalization
    dev_problems: int
    kind: str = "dev-fitted"

    @property
    def solution_method(self) -> str:
        return f"ensemble solution level, {self.kind} weights"

    @property
    def step_method(self) -> str:
        return f"ensemble step level, {self.kind} weights"

    @property
    def step_key(self) -> str:
        """The record field of the step-level run with these weights."""
        return "step_level_" + ("fitted" if self.kind == "dev-fitted" else self.kind)


def method_outcomes(record: dict[str, Any], extraction: str, weightings: Sequence[Fitted] = ()) -> dict[str, bool]:
    """Whether each method answered this problem right, under one answer extraction. For each of the
    ``weightings``, also the solution-level ensemble that uses them (chosen from the stored energies) and,
    when the record has its step-level run, the step-level one."""
    extract = EXTRACTORS[extraction]

    def right(text: str | None) -> bool:
        return text is not None and is_correct(extract(text), record["gold"])

    samples = record["samples"]
    outcomes = {
        "greedy": right(record["greedy"]["text"]),
        "single sample": right(samples[0]),
        f"self-consistency (maj@{len(samples)})": is_correct(majority([extract(s) for s in samples]), record["gold"]),
    }
    if "more_samples" in record:  # self-consistency at twice the budget
        doubled = samples + record["more_samples"]["samples"]
        outcomes[f"self-consistency (maj@{len(doubled)})"] = is_correct(majority([extract(s) for s in doubled]),
                                                                        record["gold"])
    for name, energies in record["energies"].items():
        if name != "ensemble":
            outcomes[f"best-of-{len(samples)}: {name}"] = right(samples[_argmin(energies)])
    outcomes["ensemble, solution level"] = right(record["solution_level"]["text"])
    if "step_level" in record:
        outcomes["ensemble, step level"] = right(record["step_level"]["text"])
    for fitted in weightings:
        outcomes[fitted.solution_method] = right(samples[select_with_weights(record["energies"], fitted.names,
                                                                             fitted.weights, fitted.normalization)])
        if fitted.step_key in record:
            outcomes[fitted.step_method] = right(record[fitted.step_key]["text"])
    outcomes[f"pass@{len(samples)} (ceiling)"] = any(right(s) for s in samples)
    return outcomes


def method_cost(record: dict[str, Any], method: str, weightings: Sequence[Fitted] = ()) -> tuple[int, float]:
    """(generator tokens, wall seconds) that a method spent on this problem."""
    sol = record["solution_level"]["seconds"]
    sampling = sol["generator"] + sol["loop"]
    if method == "greedy":
        return record["greedy"]["tokens"], record["greedy"]["seconds"]
    if method == "single sample":
        n = len(record["samples"])
        return record["sample_tokens"] // n, sampling / n
    if method.startswith("self-consistency"):
        if method == f"self-consistency (maj@{len(record['samples'])})":
            return record["sample_tokens"], sampling + sol["AnswerAgreement"]
        more = record["more_samples"]
        return record["sample_tokens"] + more["tokens"], sampling + more["seconds"] + sol["AnswerAgreement"]
    if method.startswith("best-of-"):
        return record["sample_tokens"], sampling + sol[method.split(": ", 1)[1]]
    if method == "ensemble, solution level" or method.startswith("pass@") or \
            method in {fitted.solution_method for fitted in weightings}:
        return record["sample_tokens"], sol["total"]
    if method == "ensemble, step level":
        return record["step_level"]["tokens"], record["step_level"]["seconds"]["total"]
    for fitted in weightings:
        if method == fitted.step_method:
            step = record[fitted.step_key]
            return step["tokens"], step["seconds"]["total"]
    raise KeyError(method)


def summarize(records: Sequence[dict[str, Any]], weightings: Sequence[Fitted] = ()) -> dict[str, Any]:
    if not records:
        raise ValueError("no records to summarise")
    table, outcomes = {}, {}
    for extraction in EXTRACTORS:
        per_problem = [method_outcomes(r, extraction, weightings) for r in records]
        outcomes[extraction] = {m: [o[m] for o in per_problem] for m in per_problem[0]}
    for method in outcomes["strict"]:
        costs = [method_cost(r, method, weightings) for r in records]
        table[method] = {
            "strict": accuracy(outcomes["strict"][method]).__dict__,
            "flexible": accuracy(outcomes["flexible"][method]).__dict__,
            "tokens_per_problem": sum(c[0] for c in costs) / len(records),
            "seconds_per_problem": sum(c[1] for c in costs) / len(records),
        }
    flex, n = outcomes["flexible"], len(records[0]["samples"])
    singles = [m for m in flex if m.startswith("best-of-")]
    best_single = max(singles, key=lambda m: sum(flex[m]))
    runs = [r[level]["seconds"] for r in records for level in ("solution_level", "step_level") if level in r]
    loop, total = sum(s["loop"] for s in runs), sum(s["total"] for s in runs)
    claims = {"ensemble solution level - greedy": paired_difference(flex["ensemble, solution level"], flex["greedy"])}
    step = "ensemble, step level"
    if step in flex:
        claims["ensemble step level - greedy"] = paired_difference(flex[step], flex["greedy"])
    claims[f"ensemble solution level - best single scorer ({best_single})"] = \
        paired_difference(flex["ensemble, solution level"], flex[best_single])
    doubled = [m for m in flex if m.startswith("self-consistency") and m != f"self-consistency (maj@{n})"]
    for method in doubled if step in flex else ():  # step level against self-consistency with twice its samples
        claims[f"ensemble step level - {method}"] = paired_difference(flex[step], flex[method])
    for method in [m for fitted in weightings for m in (fitted.solution_method, fitted.step_method)]:
        if method in flex:
            claims[f"{method} - greedy"] = paired_difference(flex[method], flex["greedy"])
            claims[f"{method} - best single scorer ({best_single})"] = paired_difference(flex[method], flex[best_single])
    return {
        "problems": len(records),
        "methods": table,
        "claims (flexible extraction)": claims,
        "weights": {f.kind: {**dict(zip(f.names, f.weights)), "dev_problems": f.dev_problems} for f in weightings},
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
    for kind, weights in summary.get("weights", {}).items():
        weights = dict(weights)
        dev = weights.pop("dev_problems")
        how = "their energies alone, labels unused" if kind == "unlabelled" else "their labels"
        lines += ["", f"{kind.capitalize()} weights (from {dev} development problems disjoint from these, {how}; "
                  "`consensus.core.weighting`): " + ", ".join(f"{n} {w:.2f}" for n, w in weights.items()) + "."]
    lines += ["", (f"Loop overhead (wall time outside the generator and the scorers): "
                   f"{100 * summary['loop_overhead_fraction']:.2f}% of the consensus runs' time.")]
    return "\n".join(lines) + "\n"
