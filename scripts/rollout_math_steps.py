"""Label partial solutions by rollouts, for a step-level (process) verifier, as Math-Shepherd does.

The value of a partial solution is the chance that the generator, continuing from it, reaches the
right answer. Math-Shepherd (Wang et al., 2024) estimates it without human labels: draw M
continuations from the partial solution and take the share whose final answer is right (their
"soft estimation"). A step that carries a mistake has a value near 0 although it reads fluently; a
step on a sound plan keeps the value of the problem. That is the signal a step-level search needs and
an outcome verifier, which only ever saw finished solutions, lacks.

Partial solutions are the line prefixes of the generator's own samples (``scripts/sample_math_generator.py``'s
output, on the verifier's training problems only): per problem, up to ``--solutions`` samples, the right
ones first, and the problem's worked solution, so both sound and broken plans are labelled (the generator
solves a third of these problems at best in 8 tries, so its own samples alone would hold few sound plans).
The finished samples keep their outcome label.
All rollouts of one problem are drawn in one generator call, seeded by the problem. Resumable.

    python scripts/rollout_math_steps.py --samples build/math-verifier-samples.jsonl --out build/math-step-rollouts.jsonl
"""

from __future__ import annotations

import argparse
import json
import zlib
from pathlib import Path

import torch

from consensus.eval.harness import run_resumable
from consensus.generators.text.steps import Sampling
from consensus.scorers.text.answers import extract_flexible, is_correct
from consensus.tasks.math.data import VERIFIER_TRAINING, gsm_symbolic
from consensus.tasks.math.generator import load_math_generator
from consensus.tasks.math.prompt import STOP, format_prompt, is_complete


def step_prefixes(solution: str) -> list[str]:
    """Every proper prefix of the solution that ends at a line break, before its answer line."""
    lines = solution.split("\n")
    prefixes = ["\n".join(lines[:k]) + "\n" for k in range(1, len(lines))]
    return [p for p in prefixes if p.strip() and not is_complete(p)]


def chosen_solutions(record: dict, count: int) -> list[tuple[str, bool]]:
    """Up to ``count`` distinct samples with their outcome, the right ones first."""
    labelled = [(s, is_correct(extract_flexible(s), record["gold"])) for s in dict.fromkeys(record["samples"])]
    return sorted(labelled, key=lambda x: not x[1])[:count]


def rollout_values(lm, question: str, gold: str, prefixes: list[str], rollouts: int, temperature: float,
                   generator: torch.Generator) -> list[float]:
    """Each partial solution's share of ``rollouts`` continuations whose final answer is ``gold``, all drawn
    in one generator call."""
    if not prefixes:
        return []
    prompt, s = format_prompt(question), Sampling(temperature=temperature)
    outs = lm.sample([prompt + p for p in prefixes], rollouts, max_new_tokens=s.max_new_tokens,
                     temperature=s.temperature, top_p=s.top_p, top_k=s.top_k, stop=STOP, generator=generator)
    return [sum(is_correct(extract_flexible(p + c.text), gold) for c in continuations) / rollouts
            for p, continuations in zip(prefixes, outs)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", default="build/math-verifier-samples.jsonl")
    ap.add_argument("--out", default="build/math-step-rollouts.jsonl")
    ap.add_argument("--problems", type=int, default=None, help="the first N problems of --samples (default: all)")
    ap.add_argument("--solutions", type=int, default=4, help="samples per problem whose prefixes are labelled")
    ap.add_argument("--rollouts", type=int, default=4, help="continuations per partial solution")
    ap.add_argument("--temperature", type=float, default=Sampling.temperature)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    path = Path(args.samples)
    if not path.exists():
        raise SystemExit(f"no samples at {path}; draw them first with python scripts/sample_math_generator.py --out {path}")
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()][:args.problems]

    worked = {p.question: p.solution.strip() + "\n" for p in gsm_symbolic(**VERIFIER_TRAINING)}
    if missing := [r["id"] for r in records if r["question"] not in worked]:
        raise SystemExit(f"{len(missing)} problems of {path} (first {missing[0]}) are not the verifier's training "
                         "problems (consensus.tasks.math.data.VERIFIER_TRAINING); draw the samples on those")
    lm = load_math_generator()

    def label(batch: list[dict]):
        for record in batch:
            solutions = chosen_solutions(record, args.solutions)
            texts = [s for s, _ in solutions] + [worked[record["question"]]]
            prefixes = list(dict.fromkeys(p for s in texts for p in step_prefixes(s)))
            seed = args.seed * 1_000_003 + zlib.crc32(record["id"].encode())
            values = rollout_values(lm, record["question"], record["gold"], prefixes, args.rollouts, args.temperature,
                                    torch.Generator().manual_seed(seed))
            yield {"question": record["question"], "gold": record["gold"], "template": record["template"],
                   "steps": [{"prefix": p, "value": v} for p, v in zip(prefixes, values)],
                   "solutions": [{"text": s, "correct": c} for s, c in solutions]}

    run_resumable(records, lambda r: r["id"], label, args.out, description="step rollouts",
                  settings={"samples": str(path), "solutions": args.solutions, "rollouts": args.rollouts,
                            "temperature": args.temperature, "seed": args.seed, "generator": lm.name})


if __name__ == "__main__":
    main()
