"""Text backends side by side on the offline Gemma 3 270M: llama.cpp (ours, over the Q4_K_M GGUF), the torch path in
float32 and bfloat16, and llama.cpp's own high-level ``create_completion``, all in one process, interleaved, median
of the repeats, against the memory-bandwidth bound measured in the same run.

- batch 1: greedy tokens/s, decode only (the time of 1 + T tokens minus that of 1) and with the prefill of a
  few-shot chain_sum prompt;
- N = 8 and 16 rows of that prompt (temperature 0.7, top-p 0.95, top-k 64): tokens/s, ``create_completion`` as N
  sequential calls;
- seconds per problem of the math experiment, solution level (best of 8) and step level (8 proposals a line, a beam
  of 2), the four scorers included: chain_sum (base Gemma, 4 shots) and gsm_symbolic (Gemma + the GSM adapter).

The bound is what decoding cannot pass at batch 1: the weights' bytes read per token (the GGUF's tensors; the
torch model's parameters) over the bandwidth of summing a 256 MB tensor. Every call starts from no kept prefixes.

    python benchmarks/generator_backends.py [--repeats 3] [--problems 3]

Writes benchmarks/results/generator-backends.json and .md (each finished measurement is kept in
generator-backends.jsonl, so a run killed halfway resumes where it stopped).
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import statistics
import subprocess
import time
from pathlib import Path

import torch

from consensus.core.budget import Budget
from consensus.core.engine import run_consensus
from consensus.core.feedback import TopK
from consensus.generators.text.causal_lm import cpu_has_native_bfloat16
from consensus.generators.text.prefix_cache import forget_kept_prefixes
from consensus.generators.text.steps import Sampling
from consensus.tasks.math.data import EXEMPLAR_SEED, few_shot_exemplars, load_problems
from consensus.tasks.math.experiment import build_ensemble, line_steps, solution_steps
from consensus.tasks.math.generator import load_math_generator
from consensus.tasks.math.prompt import format_prompt
from consensus.zoo.gemma import gemma_gguf
from consensus.zoo.text_generators import load_text_generator

RESULTS = Path(__file__).resolve().parent / "results"
BACKENDS = {"llama.cpp": {"backend": "llama.cpp"}, "torch float32": {"backend": "torch", "dtype": "float32"},
            "torch bfloat16": {"backend": "torch", "dtype": "bfloat16"}}
STOCK = "llama.cpp create_completion"


def bandwidth() -> float:
    """Bytes a second of reading memory: a sum over a 256 MB tensor (best of 5)."""
    x = torch.ones(64 * 2**20)
    x.sum()
    best = min(_seconds(x.sum) for _ in range(5))
    return x.nbytes / best


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def greedy_seconds(lm, prompt: str, tokens: int) -> float:
    forget_kept_prefixes(lm)
    start = time.perf_counter()
    [[out]] = lm.sample([prompt], 1, max_new_tokens=tokens, temperature=0.0)
    assert out.tokens == tokens, f"{lm.name} ended after {out.tokens} of {tokens} tokens; use a longer-running prompt"
    return time.perf_counter() - start


def stock_greedy_seconds(llm, prompt: str, tokens: int) -> float:
    llm.reset()
    start = time.perf_counter()
    out = llm.create_completion(prompt, max_tokens=tokens, temperature=0.0)
    assert out["usage"]["completion_tokens"] == tokens
    return time.perf_counter() - start


def rows_per_second(lm, prompt: str, n: int, tokens: int, seed: int) -> float:
    forget_kept_prefixes(lm)
    start = time.perf_counter()
    out = lm.sample([prompt], n, max_new_tokens=tokens, temperature=0.7, top_p=0.95, top_k=64,
                    generator=torch.Generator().manual_seed(seed))[0]
    return sum(c.tokens for c in out) / (time.perf_counter() - start)


def stock_rows_per_second(llm, prompt: str, n: int, tokens: int, seed: int) -> float:
    start, generated = time.perf_counter(), 0
    for row in range(n):
        llm.reset()
        out = llm.create_completion(prompt, max_tokens=tokens, temperature=0.7, top_p=0.95, top_k=64,
                                    seed=seed * 1000 + row)
        generated += out["usage"]["completion_tokens"]
    return generated / (time.perf_counter() - start)


def seconds_per_problem(lm, ensemble, problems, exemplars, level: str) -> float:
    start = time.perf_counter()
    for problem in problems:
        forget_kept_prefixes(lm)
        if level == "solution":
            run_consensus(solution_steps(lm, 8, Sampling(), exemplars), ensemble, problem.question,
                          feedback=TopK(1), budget=Budget(iterations=1), seed=0)
        else:
            run_consensus(line_steps(lm, 8, Sampling(), exemplars), ensemble, problem.question,
                          feedback=TopK(2), budget=Budget(iterations=24), seed=0)
    return (time.perf_counter() - start) / len(problems)


def cpu_name() -> str:
    try:
        lines = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--problems", type=int, default=3, help="problems per seconds-per-problem cell")
    parser.add_argument("--tokens", type=int, default=64, help="new tokens of the throughput measurements")
    args = parser.parse_args()
    from llama_cpp import Llama

    log_path = RESULTS / "generator-backends.jsonl"
    done = {}
    if log_path.exists():
        for line in log_path.read_text().splitlines():
            entry = json.loads(line)
            done[(entry["measure"], entry["backend"], entry["repeat"])] = entry["value"]
    exemplars = few_shot_exemplars("chain_sum", 4, seed=EXEMPLAR_SEED)
    chain = load_problems("chain_sum", args.problems, 0)
    gsm = load_problems("gsm_symbolic", args.problems, 0)
    prompt = format_prompt("What is 1 + 2 + 3 + 4 + 5 + 6 + 7 + 8 + 9 + 10 + 11 + 12 + 13 + 14 + 15 + 16?", exemplars)
    base = {name: load_text_generator(**kw) for name, kw in BACKENDS.items()}
    tuned = {name: load_math_generator(**kw) for name, kw in BACKENDS.items()}
    stock = Llama(model_path=str(gemma_gguf()), n_ctx=2048, n_threads=base["llama.cpp"].threads, verbose=False)
    prompt_tokens = len(base["llama.cpp"].tokenize(prompt))
    ensembles = {name: (build_ensemble(base[name], exemplars), build_ensemble(tuned[name])) for name in BACKENDS}
    gguf_bytes = gemma_gguf().stat().st_size
    torch_bytes = sum(p.numel() * 4 for p in base["torch float32"].model.parameters())
    # Each measure of (a backend, the repeat's seed); greedy ones need no seed
    measures = {
        "batch 1, decode": lambda lm, _: args.tokens / (greedy_seconds(lm, prompt, args.tokens + 1)
                                                        - greedy_seconds(lm, prompt, 1)),
        "batch 1, with prefill": lambda lm, _: args.tokens / greedy_seconds(lm, prompt, args.tokens),
        "N=8": lambda lm, r: rows_per_second(lm, prompt, 8, args.tokens, r),
        "N=16": lambda lm, r: rows_per_second(lm, prompt, 16, args.tokens, r),
    }
    stock_measures = {
        "batch 1, decode": lambda _: args.tokens / (stock_greedy_seconds(stock, prompt, args.tokens + 1)
                                                    - stock_greedy_seconds(stock, prompt, 1)),
        "batch 1, with prefill": lambda _: args.tokens / stock_greedy_seconds(stock, prompt, args.tokens),
        "N=8": lambda r: stock_rows_per_second(stock, prompt, 8, args.tokens, r),
        "N=16": lambda r: stock_rows_per_second(stock, prompt, 16, args.tokens, r),
    }
    problem_cells = {f"{family}, {level} level": functools.partial(_problem_cell, family, level)
                     for family in ("chain_sum", "gsm_symbolic") for level in ("solution", "step")}
    context = {"base": base, "tuned": tuned, "ensembles": ensembles, "exemplars": exemplars,
               "problems": {"chain_sum": chain, "gsm_symbolic": gsm}}
    with log_path.open("a") as log:
        def measure(name: str, backend: str, repeat: int, fn) -> None:
            if (name, backend, repeat) in done:
                return
            value = fn()
            done[(name, backend, repeat)] = value
            log.write(json.dumps({"measure": name, "backend": backend, "repeat": repeat, "value": value}) + "\n")
            log.flush()
            print(f"{name:32} {backend:28} repeat {repeat}: {value:.3f}", flush=True)

        for lm in base.values():  # warm-up
            lm.sample([prompt], 2, max_new_tokens=4, temperature=0.7, generator=torch.Generator().manual_seed(0))
        for repeat in range(args.repeats):
            order = list(BACKENDS) if repeat % 2 == 0 else list(BACKENDS)[::-1]
            for name, fn in measures.items():
                for backend in order:
                    measure(name, backend, repeat, functools.partial(fn, base[backend], repeat))
                measure(name, STOCK, repeat, functools.partial(stock_measures[name], repeat))
            for name, cell in problem_cells.items():
                for backend in order:
                    measure(name, backend, repeat, functools.partial(cell, context, backend))
    bw = bandwidth()
    report(done, args, bw, gguf_bytes, torch_bytes, prompt_tokens, list(measures), list(problem_cells))


def _problem_cell(family: str, level: str, context: dict, backend: str) -> float:
    lm = context["base" if family == "chain_sum" else "tuned"][backend]
    ensemble = context["ensembles"][backend][0 if family == "chain_sum" else 1]
    exemplars = context["exemplars"] if family == "chain_sum" else []
    return seconds_per_problem(lm, ensemble, context["problems"][family], exemplars, level)


def report(done: dict, args, bw: float, gguf_bytes: int, torch_bytes: int, prompt_tokens: int,
           throughput: list[str], problems: list[str]) -> None:
    def median(name: str, backend: str) -> float | None:
        values = [v for (m, b, _), v in done.items() if m == name and b == backend]
        return statistics.median(values) if values else None

    columns = [*BACKENDS, STOCK]
    bounds = {"llama.cpp": bw / gguf_bytes, "torch float32": bw / torch_bytes, "torch bfloat16": bw / (torch_bytes / 2),
              STOCK: bw / gguf_bytes}
    table = {name: {b: median(name, b) for b in columns} for name in throughput + problems}
    cpu = cpu_name()
    native = "native bfloat16" if cpu_has_native_bfloat16() else "no native bfloat16 (emulated)"
    (RESULTS / "generator-backends.json").write_text(json.dumps(
        {"cpu": cpu, "bfloat16": native, "bandwidth_GB_s": bw / 1e9, "bound_tokens_s": bounds, "table": table,
         "repeats": args.repeats, "problems": args.problems, "tokens": args.tokens, "prompt_tokens": prompt_tokens},
        indent=1) + "\n")
    fmt = lambda v, digits=1: "–" if v is None else f"{v:.{digits}f}"  # noqa: E731
    lines = ["# Text backends: llama.cpp against the torch path and llama.cpp's own API", "",
             f"`python benchmarks/generator_backends.py --repeats {args.repeats} --problems {args.problems}` on "
             f"{cpu} (2 cores, {native}), Gemma 3 270M; median of {args.repeats} interleaved repeats. Memory bandwidth "
             f"measured in the same run: {bw / 1e9:.1f} GB/s.", "",
             f"## Tokens per second ({prompt_tokens}-token few-shot prompt, {args.tokens} new tokens)", "",
             "| measure | " + " | ".join(columns) + " | llama.cpp / create_completion | llama.cpp / torch float32 |",
             "| --- | " + " | ".join("---:" for _ in columns) + " | ---: | ---: |"]
    for name in throughput:
        row = table[name]
        lines.append(f"| {name} | " + " | ".join(fmt(row[b]) for b in columns)
                     + f" | {fmt(_ratio(row['llama.cpp'], row[STOCK]), 2)} | "
                       f"{fmt(_ratio(row['llama.cpp'], row['torch float32']), 2)} |")
    lines.append("| bandwidth bound at batch 1 | " + " | ".join(fmt(bounds[b]) for b in columns) + " | | |")
    decode = table["batch 1, decode"]["llama.cpp"]
    if decode is not None:
        lines += ["", f"llama.cpp decodes at batch 1 at {decode / bounds['llama.cpp']:.0%} of its bandwidth bound "
                      f"({gguf_bytes / 1e6:.0f} MB of weights a token)."]
    lines += ["", f"## Seconds per problem (best of 8 / step level with 8 proposals and a beam of 2, the four scorers "
                  f"included, {args.problems} problems a cell)", "",
              "| family, level | " + " | ".join(BACKENDS)
              + " | llama.cpp / torch float32 | llama.cpp / torch bfloat16 |",
              "| --- | " + " | ".join("---:" for _ in BACKENDS) + " | ---: | ---: |"]
    for name in problems:
        row = table[name]
        lines.append(f"| {name} | " + " | ".join(fmt(row[b], 2) for b in BACKENDS)
                     + f" | {fmt(_ratio(row['llama.cpp'], row['torch float32']), 2)}"
                       f" | {fmt(_ratio(row['llama.cpp'], row['torch bfloat16']), 2)} |")
    (RESULTS / "generator-backends.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


if __name__ == "__main__":
    main()
