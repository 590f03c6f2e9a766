"""The LM verifier (``consensus.scorers.text.LMVerifier``) on setting (a), alone and as a fifth expert of the ensemble.

It scores the committed samples of setting (a), the same 200 problems and 8 samples each as the committed table
(``math-gsm_symbolic_train_templates.jsonl``: new problems of the generator's training templates), and those of its
100 development problems (``...-dev.jsonl``, disjoint from them): the LM's features of every sample are read once,
resumable through the harness into build/ (a cache), and the committed head's energies of them are written to
math-lm-verifier.jsonl and math-lm-verifier-dev.jsonl; the four experts' energies are the committed ones. Then:

- validation: each expert's ranking AUC on the development problems (held-out problems of the training templates;
  the step verifier's on its own committed draws of them), pooled and within each problem, and best-of-8;
- the table of setting (a) with five experts at solution level (best of the 8 samples; step level would need new
  runs): every method of ``consensus.tasks.math.report``, the ensemble with equal weights and with weights fitted
  on the development problems (``fit_weights``; also written as a weights file), and the paired claims: each
  ensemble against its best single scorer and against greedy.

    python benchmarks/math_lm_verifier.py
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from consensus.core.files import write_atomic
from consensus.core.weighting import DevSet, fit_weights, select_with_weights, write_weights
from consensus.eval.harness import read_results, run_resumable
from consensus.eval.metrics import accuracy, ranking_auc, within_problem_auc
from consensus.scorers.text.answers import extract_flexible, is_correct
from consensus.scorers.text.lm_verifier import LMVerifier, solution_features
from consensus.tasks.math.generator import load_verifier_lm
from consensus.tasks.math.prompt import format_prompt
from consensus.tasks.math.report import Fitted, markdown, summarize

RESULTS = Path(__file__).parent / "results"
FAMILY = "gsm_symbolic_train_templates"
EVALUATION, DEVELOPMENT = RESULTS / f"math-{FAMILY}.jsonl", RESULTS / f"math-{FAMILY}-dev.jsonl"
STEP_VERIFIER_DEV = RESULTS / f"math-{FAMILY}-step-verifier-dev.jsonl"
NAME = "LMVerifier"


def features_of(records: list[dict], lm, path: Path, batch: int) -> dict[str, list]:
    """Every record's samples' features (``solution_features`` of the LM's states), by record id: read once, kept
    in ``path`` (build/, a cache: the head that reads them can change without reading the LM again)."""
    def extract(group: list[dict]):
        for r in group:
            start = time.perf_counter()
            states = lm.hidden_states([format_prompt(r["question"])] * len(r["samples"]), r["samples"])
            yield {"features": solution_features(states).half().tolist(), "seconds": time.perf_counter() - start}

    return {r["id"]: r for r in run_resumable(records, lambda r: r["id"], extract, path, batch_size=batch,
                                              description=path.stem, settings={"lm": lm.name, "backend": lm.backend})}


def scored(records: list[dict], verifier: LMVerifier, features: dict[str, dict], path: Path) -> dict[str, dict]:
    """The verifier's energies of every record's samples and its seconds a problem (reading the states and the
    head), written to ``path``; by record id."""
    out = {r["id"]: {"energies": verifier.energy_of_features(torch.tensor(features[r["id"]]["features"])).tolist(),
                     "seconds": features[r["id"]]["seconds"]} for r in records}
    write_atomic(path, "".join(json.dumps({"id": k, **v}) + "\n" for k, v in out.items()))
    return out


def with_verifier(record: dict, verdict: dict, names: list[str]) -> dict:
    """The record with the verifier as a fifth expert: its energies and, for an evaluation record, its seconds and
    the equal-weight ensemble of the five chosen again from the stored energies (z-scored, as the four's was)."""
    energies = {**{k: v for k, v in record["energies"].items() if k != "ensemble"}, NAME: verdict["energies"]}
    if "solution_level" not in record:  # a development problem: its energies are all that is read
        return {**record, "energies": energies}
    pick = select_with_weights(energies, names, [1.0] * len(names), "zscore")
    seconds = {**record["solution_level"]["seconds"], NAME: verdict["seconds"]}
    solution_level = {**record["solution_level"], "text": record["samples"][pick], "seconds": seconds}
    # the committed step-level runs had four experts: not this table's (five would need them run again)
    return {**{k: v for k, v in record.items() if not k.startswith("step_level")}, "energies": energies,
            "solution_level": solution_level}


def measured(records: list[dict], name: str) -> dict:
    """An expert's ranking AUC over the records' samples (pooled, and within each problem) and its best-of-N."""
    right = [[is_correct(extract_flexible(s), r["gold"]) for s in r["samples"]] for r in records]
    energies = [[float("inf") if x is None else x for x in r["energies"][name]] for r in records]  # dropped: worst
    picks = accuracy([row[min(range(len(e)), key=e.__getitem__)] for row, e in zip(right, energies)])
    return {"auc": ranking_auc(-torch.tensor([x for e in energies for x in e]),
                               torch.tensor([x for row in right for x in row])),
            "auc_within_problems": within_problem_auc(energies, right),
            "best_of_8": {"accuracy": 100 * picks.value, "low": 100 * picks.low, "high": 100 * picks.high}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=4, help="problems scored per call")
    ap.add_argument("--backend", default="auto", choices=("auto", "llama.cpp", "torch"),
                    help="what reads the verifier LM's states (auto: llama.cpp where installed, as the scorer does)")
    args = ap.parse_args()
    lm = load_verifier_lm(backend=args.backend)
    verifier = LMVerifier(lm, prompt=format_prompt)
    settings = {"verifier": NAME, "lm": lm.name, "backend": lm.backend}
    stem = "math-lm-verifier" + ("" if lm.backend == "llama.cpp" else f"-{lm.backend}")  # the default unmarked
    records, dev = read_results(EVALUATION), read_results(DEVELOPMENT)
    cache = Path(__file__).parent.parent / "build"
    verdicts = scored(records, verifier, features_of(records, lm, cache / f"{stem}-eval-features.jsonl", args.batch),
                      RESULTS / f"{stem}.jsonl")
    dev_verdicts = scored(dev, verifier, features_of(dev, lm, cache / f"{stem}-dev-features.jsonl", args.batch),
                          RESULTS / f"{stem}-dev.jsonl")
    names = [*(k for k in records[0]["energies"] if k != "ensemble"), NAME]
    records = [with_verifier(r, verdicts[r["id"]], names) for r in records]
    dev = [with_verifier(r, dev_verdicts[r["id"]], names) for r in dev]
    sets = [DevSet(r["energies"], [is_correct(extract_flexible(s), r["gold"]) for s in r["samples"]]) for r in dev]
    fitted = Fitted(names, fit_weights(sets, names, "zscore"), "zscore", len(dev))
    weights = RESULTS / "weights" / f"math-{FAMILY}-{stem.removeprefix('math-')}-dev-fitted.json"
    write_weights(weights, names, fitted.weights, "zscore",
                  fitted="dev-fitted", family=FAMILY, dev_problems=len(dev), by="benchmarks/math_lm_verifier.py")
    summary = summarize(records, [fitted])
    checked = {name: measured(dev, name) for name in names}
    checked["StepVerifier"] = measured(read_results(STEP_VERIFIER_DEV), "StepVerifier")  # its own draws of them
    summary.update({"family": FAMILY, "experts": names, "validation (development problems)": checked,
                    "verifier": settings, "samples": EVALUATION.name})
    (RESULTS / f"{stem}.json").write_text(json.dumps(summary, indent=1))
    title = f"setting (a) with the LM verifier as a fifth expert (the committed samples; its LM on {lm.backend})"
    lines = [markdown(summary, title), "", "## Validation: each expert on the 100 development problems", "",
             "| expert | AUC pooled | AUC within problems | best-of-8 |", "| --- | --- | --- | --- |"]
    for name, v in summary["validation (development problems)"].items():
        b = v["best_of_8"]
        lines.append(f"| {name} | {v['auc']:.3f} | {v['auc_within_problems']:.3f} | {b['accuracy']:.1f} "
                     f"[{b['low']:.1f}, {b['high']:.1f}] |")
    table = "\n".join(lines) + "\n"
    (RESULTS / f"{stem}.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
