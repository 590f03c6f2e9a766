"""Would attention that reads a shared prompt once pay on this CPU? One decode step's attention for N
candidates of one prompt, at Gemma 3 270M's shapes (18 layers, 4 query heads sharing 1 key/value head, head
dimension 256), computed as the sampler does today (every row attends over its own copy of the prompt's cache
plus its own new tokens) against cascade attention (the N queries attend to the one prompt cache together, as
one matrix product, then each to its own new tokens; the two parts merged by their log-sum-exp), in the
model's bfloat16, interleaved, median of the repeats. The outputs are checked equal (within bf16 rounding).

    python benchmarks/shared_prefix_attention.py [--prompt 306] [--generated 24] [--repeats 20]

Writes benchmarks/results/shared-prefix-attention.json and .md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"
LAYERS, HEADS, KV_HEADS, DIM = 18, 4, 1, 256


def per_row(q: torch.Tensor, prefix_k, prefix_v, own_k, own_v) -> torch.Tensor:
    """Today: the prompt's cache repeated for every row, concatenated with the row's own keys and values."""
    n = q.shape[0]
    k = torch.cat([prefix_k.expand(n, -1, -1, -1), own_k], dim=2)
    v = torch.cat([prefix_v.expand(n, -1, -1, -1), own_v], dim=2)
    return torch.nn.functional.scaled_dot_product_attention(q, k, v)


def cascade(q: torch.Tensor, prefix_k, prefix_v, own_k, own_v) -> torch.Tensor:
    """softmax over [prefix; own] = the two partial softmaxes weighted by their mass: with m = logsumexp of the
    scores, out = (e^{m_p} out_p + e^{m_o} out_o) / (e^{m_p} + e^{m_o})."""
    n, heads, _, dim = q.shape
    scale = dim ** -0.5
    rows = q.transpose(0, 2)  # [1, heads, n, dim]: all rows' queries against the one prefix
    scores_p = (rows @ prefix_k.transpose(-1, -2)).float() * scale  # [1, heads, n, P]
    scores_o = (q @ own_k.transpose(-1, -2)).float() * scale  # [n, heads, 1, t]
    m_p = scores_p.logsumexp(-1).transpose(0, 2)  # [n, heads, 1]
    m_o = scores_o.logsumexp(-1)  # [n, heads, 1]
    out_p = (scores_p.softmax(-1).to(q.dtype) @ prefix_v).transpose(0, 2)  # [n, heads, 1, dim]
    out_o = scores_o.softmax(-1).to(q.dtype) @ own_v
    w = torch.sigmoid(m_p - m_o)[..., None]  # e^{m_p} / (e^{m_p} + e^{m_o})
    return (w * out_p.float() + (1 - w) * out_o.float()).to(q.dtype)


def timed(fn, *tensors) -> float:
    start = time.perf_counter()
    for _ in range(LAYERS):
        fn(*tensors)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompt", type=int, default=306)
    parser.add_argument("--generated", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.manual_seed(0)
    rows = {}
    for n in (8, 16, 32):
        dtype = torch.bfloat16
        q = torch.randn(n, HEADS, 1, DIM, dtype=dtype)
        prefix_k, prefix_v = (torch.randn(1, HEADS, args.prompt, DIM, dtype=dtype) for _ in range(2))  # kv heads shared
        own_k, own_v = (torch.randn(n, HEADS, args.generated, DIM, dtype=dtype) for _ in range(2))
        error = (cascade(q, prefix_k, prefix_v, own_k, own_v).float()
                 - per_row(q, prefix_k, prefix_v, own_k, own_v).float()).abs().max().item()
        times = {"per row (today)": [], "cascade": []}
        with torch.inference_mode():
            for repeat in range(args.repeats):
                pair = [("per row (today)", per_row), ("cascade", cascade)]
                for name, fn in pair if repeat % 2 == 0 else pair[::-1]:
                    times[name].append(timed(fn, q, prefix_k, prefix_v, own_k, own_v))
        medians = {name: 1000 * statistics.median(v) for name, v in times.items()}
        rows[f"N={n}"] = {**{f"{k} ms": v for k, v in medians.items()},
                          "ratio": medians["cascade"] / medians["per row (today)"], "max_abs_difference": error}
        print(n, rows[f"N={n}"], flush=True)
    (RESULTS / "shared-prefix-attention.json").write_text(json.dumps(
        {"prompt_tokens": args.prompt, "generated_tokens": args.generated, "repeats": args.repeats, "rows": rows},
        indent=1) + "\n")
    lines = ["# Attention of one decode step over all 18 layers: per-row prompt copies against cascade", "",
             f"`python benchmarks/shared_prefix_attention.py` (Gemma 3 270M shapes, bf16, a {args.prompt}-token prompt "
             f"and {args.generated} generated tokens per row, median of {args.repeats} interleaved repeats).", "",
             "| N | per row, today (ms) | cascade (ms) | cascade / today | max abs difference |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['per row (today) ms']:.2f} | {r['cascade ms']:.2f} | {r['ratio']:.2f} | "
                     f"{r['max_abs_difference']:.3f} |")
    (RESULTS / "shared-prefix-attention.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
