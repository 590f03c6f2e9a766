"""Sampling throughput of ``CausalLMGenerator.sample`` (shared prefill, one copy of the prompt's keys and values
for its N rows, top-k slice, log-probabilities carried) against transformers' ``generate`` (do_sample, the same
top-k / top-p / temperature, N return sequences, transformers' own SDPA attention), on the offline Gemma 3 270M
and a 4-shot chain_sum prompt, interleaved, N = 8 and 16: generated tokens per second (median of the repeats)
and their ratio; and our sampler with N copies of the prompt (``shared_prompt_attention=False``), to show what
the one copy gives. Every call of ours starts with no kept prefixes, so it prefills the prompt as generate does.

    python benchmarks/sampler_throughput.py [--repeats 3] [--tokens 48]

Writes benchmarks/results/sampler-throughput.json and .md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from consensus.generators.text import CausalLMGenerator
from consensus.generators.text.prefix_cache import forget_kept_prefixes
from consensus.tasks.math.data import EXEMPLAR_SEED, few_shot_exemplars, load_problems
from consensus.tasks.math.prompt import format_prompt
from consensus.zoo.gemma import load_gemma

RESULTS = Path(__file__).resolve().parent / "results"


def ours(lm, prompt: str, n: int, tokens: int, seed: int) -> float:
    forget_kept_prefixes(lm)  # the prompt is prefilled every time, as generate does
    start = time.perf_counter()
    out = lm.sample([prompt], n, max_new_tokens=tokens, temperature=0.7, top_p=0.95, top_k=64,
                    generator=torch.Generator().manual_seed(seed))[0]
    return sum(c.tokens for c in out) / (time.perf_counter() - start)


@torch.inference_mode()
def stock(lm, prompt: str, n: int, tokens: int, seed: int) -> float:
    enc = lm.encode([prompt])
    torch.manual_seed(seed)
    own = lm.model.config._attn_implementation
    lm.model.set_attn_implementation("sdpa")  # transformers as it ships
    start = time.perf_counter()
    out = lm.model.generate(**enc, do_sample=True, temperature=0.7, top_p=0.95, top_k=64, max_new_tokens=tokens,
                            num_return_sequences=n, pad_token_id=lm.tokenizer.pad_token_id)
    seconds = time.perf_counter() - start
    lm.model.set_attn_implementation(own)
    new = out[:, enc["input_ids"].shape[1]:]
    eos = torch.tensor(sorted(lm.eos_ids))
    generated = sum(int(next((i + 1 for i, t in enumerate(row.tolist()) if t in eos.tolist()), len(row)))
                    for row in new)
    return generated / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=48)
    args = parser.parse_args()
    lm = load_gemma()
    exemplars = few_shot_exemplars("chain_sum", 4, seed=EXEMPLAR_SEED)
    prompt = format_prompt(load_problems("chain_sum", 1, 0)[0].question, exemplars)
    prompt_tokens = len(lm.tokenizer(prompt)["input_ids"])
    copies = CausalLMGenerator(lm.model, lm.tokenizer, shared_prompt_attention=False)
    ours(lm, prompt, 2, 4, 0), ours(copies, prompt, 2, 4, 0), stock(lm, prompt, 2, 4, 0)  # warm-up
    rows = {}
    for n in (8, 16):
        speeds: dict[str, list[float]] = {"consensus sample": [], "N copies of the prompt": [],
                                          "transformers generate": []}
        for repeat in range(args.repeats):
            paths = [("consensus sample", lm, ours), ("N copies of the prompt", copies, ours),
                     ("transformers generate", lm, stock)]
            for name, model, run in paths if repeat % 2 == 0 else paths[::-1]:
                speeds[name].append(run(model, prompt, n, args.tokens, repeat))
        medians = {name: statistics.median(v) for name, v in speeds.items()}
        rows[f"N={n}"] = {**{f"{k} tokens/s": v for k, v in medians.items()},
                          "ratio": medians["consensus sample"] / medians["transformers generate"],
                          "one copy / N copies": medians["consensus sample"] / medians["N copies of the prompt"]}
        print(n, rows[f"N={n}"], flush=True)
    (RESULTS / "sampler-throughput.json").write_text(json.dumps(
        {"prompt_tokens": prompt_tokens, "max_new_tokens": args.tokens, "repeats": args.repeats, "rows": rows},
        indent=1) + "\n")
    lines = ["# Sampling throughput: consensus's sampler against transformers' generate", "",
             f"`python benchmarks/sampler_throughput.py` (Gemma 3 270M bf16, a {prompt_tokens}-token prompt, up to "
             f"{args.tokens} new tokens, median of {args.repeats} interleaved repeats).", "",
             "| N | consensus sample (tokens/s) | transformers generate (tokens/s) | ratio | ours with N copies of the "
             "prompt (tokens/s) | one copy / N copies |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['consensus sample tokens/s']:.1f} | {r['transformers generate tokens/s']:.1f} | "
                     f"{r['ratio']:.2f} | {r['N copies of the prompt tokens/s']:.1f} | {r['one copy / N copies']:.2f} |")
    (RESULTS / "sampler-throughput.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
