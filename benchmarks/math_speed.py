"""Seconds per math problem on three paths, in one process:

- old: the likelihood scorer runs its own forward pass over every candidate, and every generator call prefills
  its whole prompt;
- carried: the likelihood scorer reads the log-probabilities the generator computed while sampling;
- new: carried, and the generator keeps the keys and values of what it read (``PrefixCache``), so a step
  prefills only the tokens after the partial solutions it sampled the step before; and the N rows of a prompt
  read its keys and values from one copy (cascade attention, ``shared_prefix``), where the others read N copies.

All three run the same engine, generator, scorers, seeds and problems; the old one only hands the scorers
plain strings (``ScoredAfresh``), which is what every candidate was before the generator carried its
log-probabilities, and the old and carried ones run without the prefix cache (each (N, level) group of the new
one starts with an empty cache). Interleaved: every repeat runs each (N, level) on the paths back to back, in a
rotating order, so the machine's drift hits all. chain_sum (Gemma 3 270M base, 4-shot, max 48 new tokens) and
gsm_symbolic (Gemma + the GSM LoRA, zero-shot, max 256), N = 4, 8, 16, 32, solution level (best of N) and
step level (N proposals per line, beam 2). Measurements go one record each to
benchmarks/results/math-speed.jsonl through the evaluation harness (a killed run resumes where it stopped); the
summary to math-speed.json and .md.

    python benchmarks/math_speed.py [--repeats 3] [--problems chain_sum=4,gsm_symbolic=1] [--twenty]
    python benchmarks/math_speed.py --problems gsm_symbolic=4 --ns 8 --levels solution   # more problems in one cell
    python benchmarks/math_speed.py --dtype float32 --repeats 1 --ns 8 --problems chain_sum=4,gsm_symbolic=2

In bfloat16 the paths' selected answers differ now and then (the README says why); ``--dtype float32`` (its own files,
math-speed-float32.*) shows whether they select the same ones without that rounding.

``--twenty`` also times 20 gsm_symbolic problems at N = 8, at solution and at step level, one at a time on the old
path against the new path with the problems' runs in lockstep, 4 at solution level and 8 at step level: one generator
call and one call per scorer a step for all of them.
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
from consensus.eval.harness import read_results, run_resumable
from consensus.generators.text.lockstep import consensus_in_lockstep
from consensus.generators.text.prefix_cache import PrefixCache
from consensus.generators.text.steps import Sampling
from consensus.scorers.text.answers import extract_flexible
from consensus.tasks.math.data import EXEMPLAR_SEED, few_shot_exemplars, load_problems
from consensus.tasks.math.experiment import MAX_STEPS, build_ensemble, line_steps, solution_steps
from consensus.tasks.math.generator import load_math_generator
from consensus.zoo.gemma import load_gemma

RESULTS = Path(__file__).resolve().parent / "results"
NS = (4, 8, 16, 32)
LEVELS = ("solution", "step")
PATHS = ("old", "carried", "new")
MAX_NEW_TOKENS = {"chain_sum": 48, "gsm_symbolic": 256}


@dataclasses.dataclass
class ScoredAfresh:
    """The old path: the same steps, with every candidate a plain string, so each scorer computes all it reads."""

    steps: object

    def __call__(self, condition, population, generator):
        proposals = self.steps(condition, population, generator)
        return dataclasses.replace(proposals, candidates=[str(c) for c in proposals.candidates])


def setup(source: str, dtype: str = "bfloat16"):
    if source == "chain_sum":
        return load_gemma(dtype), few_shot_exemplars("chain_sum", 4, seed=EXEMPLAR_SEED)
    return load_math_generator(dtype=dtype), []


def measure(lm, ensemble, exemplars, problem, source: str, n: int, level: str, path: str, seed: int) -> dict:
    sampling = Sampling(max_new_tokens=MAX_NEW_TOKENS[source])
    steps = solution_steps(lm, n, sampling, exemplars) if level == "solution" else line_steps(lm, n, sampling, exemplars)
    if path == "old":
        steps = ScoredAfresh(steps)
    result = run_consensus(steps, ensemble, problem.question, feedback=TopK(1 if level == "solution" else 2),
                           budget=Budget(iterations=1 if level == "solution" else MAX_STEPS), seed=seed)
    return {"seconds": result.seconds, "answer": extract_flexible(result.best), "text": str(result.best),
            "tokens": result.generator_tokens}


def twenty_problems(lm, ensemble, problems, seed: int) -> dict:
    """20 gsm_symbolic problems at N = 8, solution and step level: one at a time on the old path (no prefix cache,
    every candidate scored afresh), and on the new path with the problems' runs in lockstep (solution level 4, step
    level 8 at a time: one generator call and one call per scorer a step for all of them)."""
    sampling = Sampling(max_new_tokens=MAX_NEW_TOKENS["gsm_symbolic"])
    out = {}
    for level, batch in (("solution", 4), ("step", 8)):
        steps = solution_steps if level == "solution" else line_steps
        feedback, budget = (TopK(1), Budget(iterations=1)) if level == "solution" else (TopK(2), Budget(iterations=MAX_STEPS))
        for way in ("before", "now"):
            lm.prefix_cache = PrefixCache() if way == "now" else None
            lm.shares_prompts = way == "now"
            start, answers = time.perf_counter(), []
            for i in range(0, len(problems), batch if way == "now" else 1):
                group = problems[i:i + (batch if way == "now" else 1)]
                if way == "now":
                    results = consensus_in_lockstep(lm, [
                        lambda view, ens, p=p: run_consensus(steps(view, 8, sampling), ens, p.question,
                                                             feedback=feedback, budget=budget, seed=seed)
                        for p in group], ensemble)
                else:
                    results = [run_consensus(ScoredAfresh(steps(lm, 8, sampling)), ensemble, p.question,
                                             feedback=feedback, budget=budget, seed=seed) for p in group]
                answers += [extract_flexible(r.best) for r in results]
            out[f"{level} level, {way}"] = {"seconds": time.perf_counter() - start, "answers": answers,
                                            "batch": batch if way == "now" else 1}
            print(level, way, f"{out[f'{level} level, {way}']['seconds']:.1f}s", flush=True)
        before, now = out[f"{level} level, before"], out[f"{level} level, now"]
        now["ratio"] = now["seconds"] / before["seconds"]
        now["same_answers"] = sum(a == b for a, b in zip(now["answers"], before["answers"]))
    return out


def summarize(lines: list[dict]) -> dict:
    rows = {}
    keys = sorted({(r["source"], r["level"], r["n"]) for r in lines}, key=lambda k: (k[0], LEVELS.index(k[1]), k[2]))
    for source, level, n in keys:
        cell = [r for r in lines if (r["source"], r["level"], r["n"]) == (source, level, n)]
        row = {}
        for path in PATHS:
            mine = [r for r in cell if r["path"] == path]
            per_repeat = {}
            for r in mine:  # seconds per problem in each repeat, then the median over repeats
                per_repeat.setdefault(r["repeat"], []).append(r["seconds"]["total"])
            row[f"{path}_s"] = statistics.median(statistics.mean(v) for v in per_repeat.values())
            row[f"{path}_tokens"] = statistics.mean(r["tokens"] for r in mine)
            generator = sum(r["seconds"]["generator"] for r in mine)
            row[f"{path}_likelihood_share"] = sum(r["seconds"].get("LMLikelihood", 0.0) for r in mine) / generator
        row["problems"] = len({r["problem"] for r in cell})
        row["ratio"] = row["new_s"] / row["old_s"]
        row["carried_ratio"] = row["carried_s"] / row["old_s"]
        pairs = {}
        for r in cell:
            pairs.setdefault((r["repeat"], r["problem"]), {})[r["path"]] = r
        same = [p["old"]["answer"] == p["new"]["answer"] for p in pairs.values() if "old" in p and "new" in p]
        row["same_answers"] = f"{sum(same)}/{len(same)}"
        rows[f"{source} {level} N={n}"] = row
    return rows


def rotated(repeat: int, n: int, level: str) -> tuple[str, ...]:
    """The paths in this cell's turn of the rotation, so the machine's drift hits all of them."""
    turn = (repeat + NS.index(n) + LEVELS.index(level)) % len(PATHS)
    return PATHS[turn:] + PATHS[:turn]


def cell_key(cell: tuple) -> str:
    source, repeat, n, level, path, problem = cell
    return f"{source}|{repeat}|{n}|{level}|{path}|{problem.id}"


def measuring(source: str, args: argparse.Namespace):
    """``solve`` for the harness: each cell measured on its path; the LM loads at the first cell left to measure."""
    loaded: dict = {}

    def solve(batch):
        if not loaded:
            lm, exemplars = setup(source, args.dtype)
            loaded.update(lm=lm, exemplars=exemplars, ensemble=build_ensemble(lm, exemplars))
        lm = loaded["lm"]
        for _, repeat, n, level, path, problem in batch:
            if loaded.get("group") != (repeat, n, level, path):  # each (N, level) group of a path starts afresh
                loaded["group"] = (repeat, n, level, path)
                lm.prefix_cache = PrefixCache() if path == "new" else None
                lm.shares_prompts = path == "new"
            line = {"source": source, "repeat": repeat, "n": n, "level": level, "path": path, "problem": problem.id,
                    **measure(lm, loaded["ensemble"], loaded["exemplars"], problem, source, n, level, path, args.seed),
                    "reused_tokens": lm.prefix_cache.reused_tokens if lm.prefix_cache else 0}
            if lm.prefix_cache:
                lm.prefix_cache.reused_tokens = 0
            print((source, repeat, n, level, path, problem.id), f"{line['seconds']['total']:.2f}s", flush=True)
            yield line

    return solve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--problems", default="chain_sum=4,gsm_symbolic=1", help="problems per source")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--twenty", action="store_true", help="also time 20 gsm_symbolic problems, before and now")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--ns", type=int, nargs="*", default=list(NS), choices=NS, help="the N to measure")
    parser.add_argument("--levels", nargs="*", default=list(LEVELS), choices=LEVELS, help="the levels to measure")
    parser.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float32"),
                        help="float32 (written to math-speed-float32.*) shows whether the paths select the same "
                             "answers where no bfloat16 rounding tells them apart")
    args = parser.parse_args()
    stem = "math-speed" if args.dtype == "bfloat16" else f"math-speed-{args.dtype}"
    torch.set_num_threads(args.threads)
    counts = {k: int(v) for k, v in (part.split("=") for part in args.problems.split(","))}
    log = RESULTS / f"{stem}.jsonl"
    for source, count in counts.items():
        problems = load_problems(source, count, args.seed)
        cells = [(source, repeat, n, level, path, problem) for repeat in range(args.repeats) for n in args.ns
                 for level in args.levels for path in rotated(repeat, n, level) for problem in problems]
        run_resumable(cells, cell_key, measuring(source, args), log, description=source)
    done = read_results(log)
    rows = summarize(done)
    twenty_path = RESULTS / f"{stem}-20.json"
    if args.twenty and not twenty_path.exists():
        lm, _ = setup("gsm_symbolic", args.dtype)
        twenty = twenty_problems(lm, build_ensemble(lm), load_problems("gsm_symbolic", 20, args.seed), args.seed)
        twenty_path.write_text(json.dumps(twenty, indent=1) + "\n")
    twenty = json.loads(twenty_path.read_text()) if twenty_path.exists() else None
    (RESULTS / f"{stem}.json").write_text(json.dumps({"repeats": args.repeats, "problems": counts, "rows": rows,
                                                      "twenty_problems": twenty, "threads": args.threads,
                                                      "dtype": args.dtype}, indent=1) + "\n")
    lines = ["# Math: seconds per problem, old path against carried log-probabilities, kept prefixes and one copy "
             "of each prompt", "",
             f"`python benchmarks/math_speed.py` ({args.dtype}; {args.repeats} interleaved repeats; {args.threads} "
             "threads; seconds per problem, the mean over the cell's problems, median over repeats; the likelihood's "
             "share is of generator time; same answers: new against old).", "",
             "| setting | problems | old s/problem | carried | new | carried / old | new / old | likelihood / "
             "generator, old | new | tokens, old | new | same answers |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['problems']} | {r['old_s']:.2f} | {r['carried_s']:.2f} | {r['new_s']:.2f} | "
                     f"{r['carried_ratio']:.2f} | {r['ratio']:.2f} | "
                     f"{100 * r['old_likelihood_share']:.0f}% | {100 * r['new_likelihood_share']:.1f}% | "
                     f"{r['old_tokens']:.0f} | {r['new_tokens']:.0f} | {r['same_answers']} |")
    if twenty is not None:
        lines += ["", "20 gsm_symbolic problems at N = 8, one pass each way: before, one problem at a time on the old "
                  "path; now, on the new path with the problems' runs in lockstep (solution level 4, step level 8 at a "
                  "time: one generator call and one call per scorer a step for all of them):", "",
                  "| way | seconds | / before | same answers as before |", "| --- | ---: | ---: | ---: |"]
        for way, r in twenty.items():
            lines.append(f"| {way} | {r['seconds']:.0f} | {r.get('ratio', 1.0):.2f} | "
                         f"{r.get('same_answers', len(r['answers']))}/{len(r['answers'])} |")
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
