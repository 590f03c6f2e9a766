"""The offline Gemma as a math judge (``consensus.scorers.text.judge.LLMJudge``), on setting (a)'s committed samples.

It judges the 8 samples of each problem in ``math-gsm_symbolic_train_templates.jsonl`` (new problems of the
generator's training templates; the samples and the four experts' energies are the committed table's), resumable
through the harness into math-judge.jsonl, and reports, beside the four experts measured the same way on the same
samples: the ranking AUC over every sample (P(a right sample gets a lower energy than a wrong one), ties half),
pooled and within each problem, and best-of-8 accuracy, each expert's against the judge's, paired over problems.

    python benchmarks/math_judge.py --problems 200
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from consensus.core.ensemble import Ensemble
from consensus.eval.harness import run_resumable
from consensus.eval.metrics import accuracy, paired_difference, ranking_auc, within_problem_auc
from consensus.scorers.text.answers import extract_flexible, is_correct
from consensus.scorers.text.judge import LLMJudge
from consensus.zoo.text_generators import load_text_generator

RESULTS = Path(__file__).parent / "results"
SAMPLES = RESULTS / "math-gsm_symbolic_train_templates.jsonl"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problems", type=int, default=200)
    ap.add_argument("--batch", type=int, default=4, help="problems judged per call")
    args = ap.parse_args()
    records = [json.loads(line) for line in SAMPLES.read_text().splitlines()][:args.problems]
    lm = load_text_generator()  # the base Gemma 3 270M: a judge that is not the generator
    judge = Ensemble([LLMJudge(lm)])

    def score(batch: list[dict]) -> list[dict]:
        start = time.perf_counter()
        energies = judge.score_items([r["samples"] for r in batch], [r["question"] for r in batch])
        seconds = (time.perf_counter() - start) / len(batch)
        return [{"energies": e.per_scorer["LLMJudge"].tolist(), "seconds": seconds} for e in energies]

    judged = {j["id"]: j for j in run_resumable(records, lambda r: r["id"], score, RESULTS / "math-judge.jsonl",
                                                batch_size=args.batch, description="judge",
                                                settings={"judge": lm.name, "backend": lm.backend,
                                                          "samples": SAMPLES.name})}
    right = [[is_correct(extract_flexible(s), r["gold"]) for s in r["samples"]] for r in records]
    by_scorer = {name: [r["energies"][name] for r in records] for name in records[0]["energies"]
                 if name != "ensemble"}
    by_scorer["LLMJudge"] = [judged[r["id"]]["energies"] for r in records]
    positive = torch.tensor([x for row in right for x in row])
    picks = {name: [row[min(range(len(e)), key=e.__getitem__)] for row, e in zip(right, energies)]
             for name, energies in by_scorer.items()}
    summary = {"title": "The offline Gemma 3 270M as a math judge (setting a)", "problems": len(records),
               "judge": lm.name, "backend": lm.backend,
               "seconds_per_problem": sum(j["seconds"] for j in judged.values()) / len(judged),
               "scorers": {name: {"auc": ranking_auc(-torch.tensor([x for e in energies for x in e]), positive),
                                  "auc_within_problems": within_problem_auc(energies, right),
                                  "best_of_8": _accuracy(picks[name])}
                           for name, energies in by_scorer.items()},
               "claims": {f"best-of-8: {name} - LLMJudge": paired_difference(picks[name], picks["LLMJudge"])
                          for name in by_scorer if name != "LLMJudge"}}
    (RESULTS / "math-judge.json").write_text(json.dumps(summary, indent=1))
    table = markdown(summary)
    (RESULTS / "math-judge.md").write_text(table)
    print(table)


def _accuracy(outcomes: list[bool]) -> dict:
    a = accuracy(outcomes)
    return {"accuracy": 100 * a.value, "low": 100 * a.low, "high": 100 * a.high}


def markdown(summary: dict) -> str:
    lines = [f"### {summary['title']}", "",
             f"{summary['problems']} problems, 8 samples each (the committed table's); judge {summary['judge']} on "
             f"{summary['backend']}, {summary['seconds_per_problem']:.1f} s a problem.", "",
             "| scorer | ranking AUC (pooled) | ranking AUC (within problems) | best-of-8 accuracy |",
             "| --- | --- | --- | --- |"]
    for name, s in summary["scorers"].items():
        b = s["best_of_8"]
        lines.append(f"| {name} | {s['auc']:.3f} | {s['auc_within_problems']:.3f} | {b['accuracy']:.1f} "
                     f"[{b['low']:.1f}, {b['high']:.1f}] |")
    lines += ["", "| claim | points | 95% paired bootstrap | wins / losses |", "| --- | --- | --- | --- |"]
    for name, c in summary["claims"].items():
        lines.append(f"| {name} | {c['points']:+.1f} | [{c['low']:+.1f}, {c['high']:+.1f}] | {c['wins']} / "
                     f"{c['losses']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
