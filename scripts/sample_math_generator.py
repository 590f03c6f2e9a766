"""Draw the math generator's own solutions to the verifier's training problems, for outcome supervision.

Cobbe et al. (2021) trained GSM8K verifiers on the generator's samples, labelled by whether the
final answer is right; this writes such samples, N per problem, for
``scripts/train_math_verifier.py --samples``. The problems are the verifier's training set
(``consensus.tasks.math.data.VERIFIER_TRAINING``: training templates, left out of every
evaluation by question text). Resumable: a killed run continues where it stopped.

    python scripts/sample_math_generator.py --problems 200 --out build/math-verifier-samples.jsonl
"""

from __future__ import annotations

import argparse

import torch

from consensus.eval.harness import run_resumable
from consensus.tasks.math.data import VERIFIER_TRAINING, gsm_symbolic
from consensus.tasks.math.experiment import draw_samples
from consensus.tasks.math.generator import load_math_generator


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="build/math-verifier-samples.jsonl")
    ap.add_argument("--problems", type=int, default=200)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--batch", type=int, default=4, help="problems whose samples are drawn in one generator call")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.problems > VERIFIER_TRAINING["size"]:
        raise SystemExit(f"--problems {args.problems} is more than the verifier's {VERIFIER_TRAINING['size']} "
                         "training problems (consensus.tasks.math.data.VERIFIER_TRAINING)")

    lm = load_math_generator()
    problems = gsm_symbolic(VERIFIER_TRAINING["split"], args.problems, seed=VERIFIER_TRAINING["seed"])

    def draw(batch):
        for p, drawn in zip(batch, draw_samples(lm, batch, args.n, args.seed)):
            yield {"question": p.question, "gold": p.answer, "template": p.template, "samples": drawn["samples"]}

    run_resumable(problems, lambda p: p.id, draw, args.out, batch_size=args.batch, description="generator samples",
                  settings={"n": args.n, "seed": args.seed, "generator": lm.name})


if __name__ == "__main__":
    main()
