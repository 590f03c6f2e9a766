"""Seconds per math problem when the likelihood scorer reads the log-probabilities the generator computed
while sampling (new) against its own second forward pass over every candidate (old), in one process.

Both paths run the same engine, generator, scorers, seeds and problems; the old one only hands the scorers
plain strings (``ScoredAfresh``), which is what every candidate was before the generator carried its
log-probabilities. Interleaved: every repeat runs each (N, level) on both paths back to back, in alternating
order, so the machine's drift hits both. chain_sum (Gemma 3 270M base, 4-shot, max 48 new tokens) and
gsm_symbolic (Gemma + the GSM LoRA, zero-shot, max 256), N = 4, 8, 16, 32, solution level (best of N) and
step level (N proposals per line, beam 2). Measurements go one JSON line each to
benchmarks/results/math-speed.jsonl (a killed run resumes where it stopped); the summary to
math-speed.json and .md.

    python benchmarks/math_speed.py [--repeats 3] [--problems chain_sum=4,gsm_symbolic=1] [--twenty]

``--twenty`` also times 20 gsm_symbolic problems at solution level, N = 8, before, with
the log-probabilities carried, and with them carried and 4 problems drawn per generator call.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path

import torch

from consensus.core.budget import Budget
from consensus.core.engine import run_consensus
from consensus.core.feedback import TopK
from consensus.generators.text.steps import Sampling
from consensus.scorers.text.answers import extract_flexible
from consensus.tasks.math.data import few_shot_exemplars, load_problems
from consensus.tasks.math.experiment import build_ensemble, line_steps, solution_steps
from consensus.tasks.math.generator import load_math_generator
from consensus.zoo.gemma import load_gemma

RESULTS = Path(__file__).resolve().parent / "results"
NS = (4, 8, 16, 32)
LEVELS = ("solution", "step")
MAX_NEW_TOKENS = {"chain_sum": 48, "gsm_symbolic": 256}


@dataclasses.dataclass
class ScoredAfresh:
    """The old path: the same steps, with every candidate a plain string, so each scorer computes all it reads."""

    steps: object

    def __call__(self, condition, population, generator):
        proposals = self.steps(condition, population, generator)
        return dataclasses.replace(proposals, candidates=[str(c) for c in proposals.candidates])


def setup(source: str):
    if source == "chain_sum":
        return load_gemma(), few_shot_exemplars("chain_sum", 4, seed=777)
    return load_math_generator(), []


def measure(lm, ensemble, exemplars, problem, source: str, n: int, level: str, path: str, seed: int) -> dict:
    sampling = Sampling(max_new_tokens=MAX_NEW_TOKENS[source])
    steps = solution_steps(lm, n, sampling, exemplars) if level == "solution" else line_steps(lm, n, sampling, exemplars)
    if path == "old":
        steps = ScoredAfresh(steps)
    result = run_consensus(steps, ensemble, problem.question, feedback=TopK(1 if level == "solution" else 2),
                           budget=Budget(iterations=1 if level == "solution" else 24), seed=seed)
    return {"seconds": result.seconds, "answer": extract_flexible(result.best), "text": str(result.best),
            "tokens": result.generator_tokens}


def twenty_problems(lm, ensemble, problems, batch: int, seed: int) -> dict:
    """20 gsm_symbolic problems at solution level, N = 8, timed three ways on the same problems:
    before (each problem alone, every candidate scored afresh), with the log-probabilities carried, and with
    them carried and ``batch`` problems drawn in one generator call."""
    sampling = Sampling(max_new_tokens=MAX_NEW_TOKENS["gsm_symbolic"])
    out = {}
    for way in ("before", "carried", f"carried, batches of {batch}"):
        start, answers = time.perf_counter(), []
        for i in range(0, len(problems), batch if way.startswith("carried,") else 1):
            group = problems[i:i + (batch if way.startswith("carried,") else 1)]
            steps = solution_steps(lm, 8, sampling)
            if way.startswith("carried,"):
                steps.prefetch([p.question for p in group], [torch.Generator().manual_seed(seed) for _ in group])
            for problem in group:
                result = run_consensus(ScoredAfresh(steps) if way == "before" else steps, ensemble, problem.question,
                                       feedback=TopK(1), budget=Budget(iterations=1), seed=seed)
                answers.append(extract_flexible(result.best))
        out[way] = {"seconds": time.perf_counter() - start, "answers": answers}
        print(way, f"{out[way]['seconds']:.1f}s", flush=True)
    before = out["before"]
    for way in list(out)[1:]:
        out[way]["ratio"] = out[way]["seconds"] / before["seconds"]
        out[way]["same_answers"] = sum(a == b for a, b in zip(out[way]["answers"], before["answers"]))
    return out


def summarize(lines: list[dict]) -> dict:
    rows = {}
    keys = sorted({(r["source"], r["level"], r["n"]) for r in lines}, key=lambda k: (k[0], LEVELS.index(k[1]), k[2]))
    for source, level, n in keys:
        cell = [r for r in lines if (r["source"], r["level"], r["n"]) == (source, level, n)]
        row = {}
        for path in ("old", "new"):
            mine = [r for r in cell if r["path"] == path]
            per_repeat = {}
            for r in mine:  # seconds per problem in each repeat, then the median over repeats
                per_repeat.setdefault(r["repeat"], []).append(r["seconds"]["total"])
            row[f"{path}_s"] = statistics.median(statistics.mean(v) for v in per_repeat.values())
            row[f"{path}_tokens"] = statistics.mean(r["tokens"] for r in mine)
            generator = sum(r["seconds"]["generator"] for r in mine)
            row[f"{path}_likelihood_share"] = sum(r["seconds"].get("LMLikelihood", 0.0) for r in mine) / generator
        row["ratio"] = row["new_s"] / row["old_s"]
        pairs = {}
        for r in cell:
            pairs.setdefault((r["repeat"], r["problem"]), {})[r["path"]] = r
        same = [p["old"]["answer"] == p["new"]["answer"] for p in pairs.values() if len(p) == 2]
        row["same_answers"] = f"{sum(same)}/{len(same)}"
        row["same_texts"] = sum(p["old"]["text"] == p["new"]["text"] for p in pairs.values() if len(p) == 2)
        rows[f"{source} {level} N={n}"] = row
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--problems", default="chain_sum=4,gsm_symbolic=1", help="problems per source")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--twenty", action="store_true", help="also time 20 gsm_symbolic problems three ways")
    args = parser.parse_args()
    counts = {k: int(v) for k, v in (part.split("=") for part in args.problems.split(","))}
    log = RESULTS / "math-speed.jsonl"
    done = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    seen = {(r["source"], r["repeat"], r["n"], r["level"], r["path"], r["problem"]) for r in done}
    for source, count in counts.items():
        problems = load_problems(source, count, args.seed)
        if all((source, r, n, level, path, p.id) in seen for r in range(args.repeats) for n in NS for level in LEVELS
               for path in ("old", "new") for p in problems):
            continue
        lm, exemplars = setup(source)
        ensemble = build_ensemble(lm, exemplars)
        for repeat in range(args.repeats):
            for n in NS:
                for level in LEVELS:
                    order = ("old", "new") if (repeat + NS.index(n)) % 2 == 0 else ("new", "old")
                    for path in order:
                        for problem in problems:
                            key = (source, repeat, n, level, path, problem.id)
                            if key in seen:
                                continue
                            line = {"source": source, "repeat": repeat, "n": n, "level": level, "path": path,
                                    "problem": problem.id,
                                    **measure(lm, ensemble, exemplars, problem, source, n, level, path, args.seed)}
                            with log.open("a") as f:
                                f.write(json.dumps(line) + "\n")
                            done.append(line)
                            print(key, f"{line['seconds']['total']:.2f}s", flush=True)
    rows = summarize(done)
    twenty_path = RESULTS / "math-speed-20.json"
    if args.twenty and not twenty_path.exists():
        lm, _ = setup("gsm_symbolic")
        twenty = twenty_problems(lm, build_ensemble(lm), load_problems("gsm_symbolic", 20, args.seed), 4, args.seed)
        twenty_path.write_text(json.dumps(twenty, indent=1) + "\n")
    twenty = json.loads(twenty_path.read_text()) if twenty_path.exists() else None
    (RESULTS / "math-speed.json").write_text(json.dumps({"repeats": args.repeats, "problems": counts, "rows": rows,
                                                         "twenty_problems": twenty}, indent=1) + "\n")
    lines = ["# Math: the likelihood scorer reading the generator's log-probabilities", "",
             f"`python benchmarks/math_speed.py` ({args.repeats} interleaved repeats; problems per source "
             f"{counts}; seconds per problem, median over repeats; the likelihood's share is of generator time).", "",
             "| setting | old s/problem | new s/problem | new / old | likelihood / generator, old | new | "
             "tokens, old | new | same answers |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['old_s']:.2f} | {r['new_s']:.2f} | {r['ratio']:.2f} | "
                     f"{100 * r['old_likelihood_share']:.0f}% | {100 * r['new_likelihood_share']:.1f}% | "
                     f"{r['old_tokens']:.0f} | {r['new_tokens']:.0f} | {r['same_answers']} |")
    if twenty is not None:
        lines += ["", "20 gsm_symbolic problems at solution level, N = 8 (the README's main command when this was "
                  "measured), one pass each way:", "",
                  "| way | seconds | / before | same answers as before |", "| --- | ---: | ---: | ---: |"]
        for way, r in twenty.items():
            lines.append(f"| {way} | {r['seconds']:.0f} | {r.get('ratio', 1.0):.2f} | "
                         f"{r.get('same_answers', len(r['answers']))}/{len(r['answers'])} |")
    (RESULTS / "math-speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
