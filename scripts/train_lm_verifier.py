"""Train the LM verifier's value head (consensus.scorers.text.lm_verifier) on the math generator's own samples.

As Cobbe et al. (2021) trained GSM8K's verifiers: the generator's samples of training problems
(``scripts/sample_math_generator.py``: the verifier's training problems, gsm_symbolic's training templates, left out
of every evaluation), each labelled by whether its final answer is the gold one: one label per sequence, the
outcome, since that is all a sample's answer says (Cobbe et al.'s token-level targets are this same label at every
token; a frozen LM gives no per-token states worth fitting separately). ``--gold`` adds each problem's gold
solution as one more right sample (the generator's own right samples are few). The LM is frozen: the features
(the math generator's last-layer states, read by the fast backend) are computed once, resumable through the
evaluation harness into ``build/``, and the head trains in seconds on the CPU (no GPU needed).

Validation: the head is fitted with a share of the templates held out and measured on those templates' problems
(the ranking AUC pooled over every sample and within each problem, and best-of-N accuracy), and 5-fold over the
templates (the AUCs); then refitted on all and written with its config and numbers. ``benchmarks/math_lm_verifier.py`` measures it on setting (a).

    python scripts/sample_math_generator.py --problems 600 --batch 8 --out build/math-verifier-samples.jsonl
    python scripts/train_lm_verifier.py --samples build/math-verifier-samples.jsonl --gold
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch
from torch import nn

from consensus.core.files import write_atomic
from consensus.eval.harness import read_results, run_resumable
from consensus.eval.metrics import accuracy, ranking_auc, within_problem_auc
from consensus.scorers.text.answers import extract_flexible, is_correct
from consensus.scorers.text.lm_verifier import LM_VERIFIER_WEIGHTS, ValueHead, solution_features
from consensus.tasks.math.data import VERIFIER_TRAINING, gsm_symbolic
from consensus.tasks.math.generator import load_math_generator
from consensus.tasks.math.prompt import format_prompt


def features(samples_path: Path, out: Path, gold: bool, backend: str) -> list[dict]:
    """Per problem: the features of its samples (and its gold solution), their labels and its template."""
    problems = read_results(samples_path)
    if not problems:
        raise SystemExit(f"no samples in {samples_path}; draw them with scripts/sample_math_generator.py")
    solutions = {p.question: p.solution for p in gsm_symbolic(**VERIFIER_TRAINING)} if gold else {}
    lm = load_math_generator(backend=backend)

    def extract(batch):
        for p in batch:
            texts = list(p["samples"]) + ([solutions[p["question"]]] if gold else [])
            states = lm.hidden_states([format_prompt(p["question"])] * len(texts), texts)
            yield {"template": p["template"], "features": solution_features(states).half().tolist(),
                   "right": [is_correct(extract_flexible(t), p["gold"]) for t in texts], "samples": len(p["samples"])}

    return run_resumable(problems, lambda p: p["id"], extract, out, description="LM verifier features",
                         settings={"lm": lm.name, "backend": lm.backend, "gold": gold})


def fit(rows: list[dict], l2: float) -> ValueHead:
    """The linear head on every sample of ``rows``: logistic regression on the standardised features (L-BFGS), right
    samples weighted to balance the classes, with ``l2`` · ‖w‖² / samples against overfitting 640 features."""
    x = torch.tensor([f for r in rows for f in r["features"]], dtype=torch.float32)
    y = torch.tensor([float(v) for r in rows for v in r["right"]])
    head = ValueHead(x.shape[1])
    head.mean.copy_(x.mean(0))
    head.scale.copy_(x.std(0).clamp_min(1e-4))
    nn.init.zeros_(head.linear.weight)
    nn.init.zeros_(head.linear.bias)
    balance = (len(y) - y.sum()) / y.sum().clamp_min(1)
    optimiser = torch.optim.LBFGS(head.parameters(), max_iter=200)

    def loss() -> torch.Tensor:
        optimiser.zero_grad()
        value = (nn.functional.binary_cross_entropy_with_logits(head(x), y, pos_weight=balance)
                 + l2 * head.linear.weight.pow(2).sum() / len(y))
        value.backward()
        return value

    optimiser.step(loss)
    return head.eval()


def measure(head: ValueHead, rows: list[dict]) -> dict:
    """On the generator's samples alone (not the gold solutions): AUC pooled and within problems, best-of-N."""
    with torch.no_grad():
        logits = [head(torch.tensor(r["features"][:r["samples"]], dtype=torch.float32)).tolist() for r in rows]
    right = [r["right"][:r["samples"]] for r in rows]
    picks = [row[max(range(len(ls)), key=ls.__getitem__)] for row, ls in zip(right, logits)]
    best = accuracy(picks)
    return {"problems": len(rows), "samples": sum(map(len, right)), "right": sum(map(sum, right)),
            "auc": ranking_auc(torch.tensor([v for ls in logits for v in ls]),
                               torch.tensor([v for row in right for v in row])),
            "auc_within_problems": within_problem_auc([[-v for v in ls] for ls in logits], right),
            f"best_of_{len(right[0])}": {"accuracy": 100 * best.value, "low": 100 * best.low, "high": 100 * best.high},
            "pass_at_n": 100 * sum(any(row) for row in right) / len(right)}


def cross_validated(rows: list[dict], templates: list[str], l2: float, seed: int, folds: int = 5) -> dict:
    """``measure`` over ``folds`` folds of the templates, each held out in turn, weighted by its problems."""
    order = random.Random(seed).sample(templates, len(templates))
    parts = [measure(fit([r for r in rows if r["template"] not in held], l2),
                     [r for r in rows if r["template"] in held])
             for held in (set(order[i::folds]) for i in range(folds))]
    total = sum(p["problems"] for p in parts)
    return {"problems": total, **{key: sum(p[key] * p["problems"] for p in parts) / total
                                  for key in ("auc", "auc_within_problems")}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=Path, default=Path("build/math-verifier-samples.jsonl"))
    ap.add_argument("--features", type=Path, default=Path("build/lm-verifier-features.jsonl"))
    ap.add_argument("--gold", action="store_true", help="each problem's gold solution as one more right sample")
    ap.add_argument("--backend", default="auto", choices=("auto", "llama.cpp", "torch"),
                    help="what reads the LM's states (auto: llama.cpp where installed, as the scorer reads them)")
    ap.add_argument("--l2", type=float, default=10.0, help="the penalty on the head's weights")
    ap.add_argument("--held-out", type=float, default=0.2, help="share of templates held out for validation")
    ap.add_argument("--seed", type=int, default=0, help="which templates are held out")
    ap.add_argument("--out", type=Path, default=LM_VERIFIER_WEIGHTS)
    args = ap.parse_args()
    start = time.perf_counter()
    rows = features(args.samples, args.features, args.gold, args.backend)
    extracted = time.perf_counter() - start
    templates = sorted({r["template"] for r in rows})
    held = set(random.Random(args.seed).sample(templates, max(1, round(args.held_out * len(templates)))))
    train, validation = [r for r in rows if r["template"] not in held], [r for r in rows if r["template"] in held]
    validated = {"held-out templates": measure(fit(train, args.l2), validation),
                 "5-fold over templates": cross_validated(rows, templates, args.l2, args.seed)}
    head = fit(rows, args.l2)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save(head.state_dict(), args.out / "head.pt")
    config = {"head": {"features": head.mean.numel()},
              "lm": f"{rows[0]['settings']['lm']} on {rows[0]['settings']['backend']}, frozen",
              "prompt": "consensus.tasks.math.prompt.format_prompt(question), zero-shot",
              "problems": len(rows), "templates": len(templates), "held_out_templates": sorted(held),
              "samples": sum(r["samples"] for r in rows), "right_samples": sum(sum(r["right"][:r["samples"]])
                                                                               for r in rows),
              "gold_solutions": args.gold, "validation": validated,
              "seconds": {"features": round(extracted, 1), "total": round(time.perf_counter() - start, 1)},
              "args": {k: str(v) for k, v in vars(args).items()}}
    write_atomic(args.out / "config.json", json.dumps(config, indent=1) + "\n")
    print(json.dumps(config["validation"], indent=1))


if __name__ == "__main__":
    main()
