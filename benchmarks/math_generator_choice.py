"""LoRA or a full fine-tune for the math generator? The same data, steps and batch for each, measured.

Each variant is trained by ``scripts/train_math_generator.py`` (resumable: a finished variant is not
retrained) on the first ``steps x batch`` problems of the generator's training set, then judged on
the same development problems, new problems of the training templates that no evaluation of
``benchmarks/math_benchmark.py`` uses: the development loss the training logs, and greedy accuracy.
Training seconds are per step on this machine, in this run.

    python benchmarks/math_generator_choice.py --steps 60
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

from consensus.eval.metrics import accuracy, paired_difference
from consensus.scorers.text.answers import extract_flexible, is_correct
from consensus.tasks.math.data import training_template_problems
from consensus.tasks.math.prompt import STOP, format_prompt

RESULTS = Path(__file__).parent / "results"
# A seed no evaluation uses: math_benchmark evaluates seeds 0.. with development problems at seed + 4, and the
# generator's development loss uses seed 3.
SEED = 1_000


def train(out: Path, rank: int, steps: int, batch: int, threads: int) -> dict:
    if not (out / "training_log.json").exists():
        subprocess.run([sys.executable, str(Path(__file__).parents[1] / "scripts" / "train_math_generator.py"),
                        "--out", str(out), "--rank", str(rank), "--steps", str(steps), "--batch-size", str(batch),
                        "--problems", str(steps * batch), "--eval-every", str(max(1, steps // 3)),
                        "--threads", str(threads)], check=True)
    return json.loads((out / "training_log.json").read_text())


def greedy_correct(out: Path, rank: int, problems, batch: int = 8) -> list[bool]:
    from consensus.generators import CausalLMGenerator
    from consensus.zoo.gemma import load_gemma

    lm = load_gemma(adapter=out) if rank else CausalLMGenerator.from_pretrained(str(out), dtype="bfloat16")
    correct = []
    for i in range(0, len(problems), batch):
        chunk = problems[i:i + batch]
        outs = lm.sample([format_prompt(p.question) for p in chunk], 1, max_new_tokens=256, temperature=0.0, stop=STOP)
        correct += [is_correct(extract_flexible(o[0].text), p.answer) for o, p in zip(outs, chunk)]
    return correct


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--ranks", default="16,0", help="LoRA ranks to compare; 0 is a full fine-tune")
    ap.add_argument("--problems", type=int, default=100, help="development problems for greedy accuracy")
    ap.add_argument("--work", default="build/generator-choice")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    problems = training_template_problems(args.problems, seed=SEED)
    variants = {}
    for rank in (int(r) for r in args.ranks.split(",")):
        name = f"lora-r{rank}" if rank else "full"
        out = Path(args.work) / f"{name}-{args.steps}x{args.batch_size}"
        log = train(out, rank, args.steps, args.batch_size, args.threads)
        correct = greedy_correct(out, rank, problems)
        steps = log["log"]
        variants[name] = {
            "rank": rank, "seconds_per_step": round(steps[-1]["seconds"] / len(steps), 2),
            "dev_loss": {e["step"]: e["dev_loss"] for e in steps if "dev_loss" in e},
            "greedy": str(accuracy(correct)), "correct": correct,
        }
        print(name, json.dumps({k: v for k, v in variants[name].items() if k != "correct"}), flush=True)

    names = list(variants)
    comparisons = {f"{a} - {b}": paired_difference(variants[a]["correct"], variants[b]["correct"])
                   for a, b in zip(names, names[1:])}
    result = {"steps": args.steps, "batch_size": args.batch_size, "training_problems": args.steps * args.batch_size,
              "development_problems": args.problems, "seed": SEED, "variants": variants, "comparisons": comparisons}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "math-generator-choice.json").write_text(json.dumps(result, indent=1))
    lines = [f"# LoRA or full fine-tune: {args.steps} steps x {args.batch_size} problems each, "
             f"{args.problems} new problems of the training templates", "",
             "| variant | s / step | dev loss by step | greedy accuracy |", "|---|---|---|---|"]
    for name, v in variants.items():
        losses = ", ".join(f"{s}: {loss}" for s, loss in v["dev_loss"].items())
        lines.append(f"| {name} | {v['seconds_per_step']} | {losses} | {v['greedy']} |")
    lines += ["", *(f"- {k}: {c['points']:+.1f} [{c['low']:+.1f}, {c['high']:+.1f}] points "
                    f"({c['wins']} won, {c['losses']} lost)" for k, c in comparisons.items())]
    (RESULTS / "math-generator-choice.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
