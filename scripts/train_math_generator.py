"""Fine-tune the math generator (offline Gemma 3 270M) on gsm_symbolic's *train* templates.

The paper's math generator was GPT-2 medium fine-tuned on GSM8K; the base 270M model solves
almost no gsm_symbolic problem, so selection would have nothing to select. This script does
what the paper did, on the templates disjoint from the evaluation templates
(``consensus.tasks.math.data.template_split``), with problems drawn from the training set that
``consensus.tasks.math.data.GENERATOR_TRAINING`` names (so evaluation on new problems of the same
templates can leave them out by question text).

``--rank R`` trains a LoRA adapter of rank R (a few MB: what the project can ship in git);
``--rank 0`` fine-tunes every weight (a full copy of the model). It runs on the GPU when there is
one and on the CPU otherwise, in bfloat16 autocast either way.

Exact resume: every ``--save-every`` steps, and when stopped with Ctrl-C or SIGTERM (after the
step in flight), it saves the weights, the optimiser, the schedule, the step and the random
state under ``OUT/checkpoint``. The same command started again continues from there and ends
with the same weights as a run that was never stopped: the data order is a function of the seed
and the step, not of a stream that has to be replayed.

    python scripts/train_math_generator.py --out src/consensus/zoo/weights/gemma-270m-gsm-lora
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import signal
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from consensus.tasks.math.data import GENERATOR_TRAINING, gsm_symbolic, training_template_problems
from consensus.tasks.math.prompt import format_prompt

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def tokenize(tokenizer, problems) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, solution ids + eos) per problem, in the prompt format the generator is used with."""
    return [(tokenizer(format_prompt(p.question))["input_ids"],
             tokenizer(p.solution.strip(), add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id])
            for p in problems]


def batch_rows(n: int, batch_size: int, seed: int, step: int) -> list[int]:
    """The rows of step ``step``: epochs are seeded permutations of the data, so any step's batch is
    known without replaying the ones before it."""
    per_epoch = n // batch_size
    epoch, k = divmod(step, per_epoch)
    order = random.Random(seed * 1_000_003 + epoch).sample(range(n), n)
    return order[k * batch_size:(k + 1) * batch_size]


def collate(rows, pad_id: int):
    """Right padding (positions start at 0 in every row); labels only on the solution tokens."""
    width = max(len(a) + len(b) for a, b in rows)
    ids = torch.full((len(rows), width), pad_id)
    labels = torch.full((len(rows), width), -100)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, (a, b) in enumerate(rows):
        ids[r, :len(a) + len(b)] = torch.tensor(a + b)
        labels[r, len(a):len(a) + len(b)] = torch.tensor(b)
        mask[r, :len(a) + len(b)] = 1
    return ids, mask, labels


def loss_on_targets(model, ids, mask, labels):
    """Mean cross-entropy of the solution tokens; the LM head (262k-way for Gemma) runs on those positions only."""
    hidden = model.get_decoder()(input_ids=ids, attention_mask=mask).last_hidden_state
    shift_hidden, shift_labels = hidden[:, :-1], labels[:, 1:]
    keep = shift_labels != -100
    logits = model.get_output_embeddings()(shift_hidden[keep]).float()
    return torch.nn.functional.cross_entropy(logits, shift_labels[keep])


def dev_loss(model, rows, pad_id, device, batch_size) -> float:
    """Mean per-token loss on the development problems (new problems of the training templates)."""
    model.eval()
    total = 0.0
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16):
        for i in range(0, len(rows), batch_size):
            ids, mask, labels = (t.to(device) for t in collate(rows[i:i + batch_size], pad_id))
            total += loss_on_targets(model, ids, mask, labels).item() * len(rows[i:i + batch_size])
    model.train()
    return total / len(rows)


def build_model(base: str, rank: int, checkpoint: Path, device: torch.device):
    from transformers import AutoModelForCausalLM

    if rank == 0:
        model = AutoModelForCausalLM.from_pretrained(checkpoint if checkpoint.exists() else base, dtype=torch.float32)
    else:
        from peft import LoraConfig, PeftModel, get_peft_model

        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
        if checkpoint.exists():
            model = PeftModel.from_pretrained(model, checkpoint, is_trainable=True)
        else:
            model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.05,
                                                     task_type="CAUSAL_LM", target_modules=LORA_TARGETS))
    return model.to(device)


class StopRequest:
    """Ctrl-C / SIGTERM set a flag; the loop finishes its step, saves and exits."""

    def __init__(self):
        self.requested = False
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._request)

    def _request(self, *_):
        self.requested = True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="src/consensus/zoo/weights/gemma-270m-gsm-lora")
    ap.add_argument("--base", default=None, help="the model to fine-tune (default: the offline Gemma 3 270M)")
    ap.add_argument("--problems", type=int, default=GENERATOR_TRAINING["size"],
                    help="training problems, the first of consensus.tasks.math.data.GENERATOR_TRAINING")
    ap.add_argument("--steps", type=int, default=250)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=None, help="default: 3e-4 for LoRA, 3e-5 for a full fine-tune")
    ap.add_argument("--rank", type=int, default=16, help="LoRA rank; 0 fine-tunes every weight")
    ap.add_argument("--save-every", type=int, default=25)
    ap.add_argument("--eval-every", type=int, default=50, help="steps between development losses (0: never)")
    ap.add_argument("--dev-problems", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    if args.problems > GENERATOR_TRAINING["size"]:
        raise SystemExit(f"--problems {args.problems} is more than GENERATOR_TRAINING's {GENERATOR_TRAINING['size']}: "
                         "raise it there first, so evaluation on the training templates leaves them all out")
    torch.set_num_threads(args.threads)
    lr = args.lr if args.lr is not None else (3e-4 if args.rank else 3e-5)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    from transformers import AutoTokenizer

    if args.base is None:
        from consensus.zoo.gemma import gemma_dir

        args.base = str(gemma_dir())
    out = Path(args.out)
    checkpoint = out / "checkpoint"
    state_path = checkpoint / "training_state.pt"
    tokenizer = AutoTokenizer.from_pretrained(args.base)
    torch.manual_seed(args.seed)
    model = build_model(args.base, args.rank, checkpoint, device)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    warmup = max(1, args.steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, args.steps) / args.steps)))
    step, log = 0, []
    if state_path.exists():
        state = torch.load(state_path, weights_only=False)
        if state["args"] != {k: v for k, v in vars(args).items() if k != "threads"}:
            raise SystemExit(f"{checkpoint} was saved by a run with other settings ({state['args']}); "
                             "rerun with those, or delete the checkpoint to start over")
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        step, log = state["step"], state["log"]
        torch.set_rng_state(state["torch_rng"])
        print(f"resuming at step {step}", flush=True)

    problems = gsm_symbolic(GENERATOR_TRAINING["split"], args.problems, seed=GENERATOR_TRAINING["seed"])
    rows = tokenize(tokenizer, problems)
    dev = tokenize(tokenizer, training_template_problems(args.dev_problems, seed=args.seed + 3))

    def save() -> None:
        model.save_pretrained(checkpoint)
        torch.save({"optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(), "step": step, "log": log,
                    "torch_rng": torch.get_rng_state(),
                    "args": {k: v for k, v in vars(args).items() if k != "threads"}}, state_path)

    stop, start = StopRequest(), time.time()
    while step < args.steps:
        ids, mask, labels = (t.to(device) for t in collate(
            [rows[i] for i in batch_rows(len(rows), args.batch_size, args.seed, step)], tokenizer.pad_token_id))
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = loss_on_targets(model, ids, mask, labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        step += 1
        entry = {"step": step, "loss": round(loss.item(), 4), "lr": schedule.get_last_lr()[0],
                 "seconds": round(time.time() - start, 1)}
        if args.eval_every and (step % args.eval_every == 0 or step == args.steps):
            entry["dev_loss"] = round(dev_loss(model, dev, tokenizer.pad_token_id, device, args.batch_size), 4)
        log.append(entry)
        print(json.dumps(entry), flush=True)
        if step % args.save_every == 0 or step == args.steps or stop.requested:
            save()
        if stop.requested and step < args.steps:
            raise SystemExit(f"stopped at step {step}; checkpoint saved in {checkpoint}: run the same command to continue")

    model.save_pretrained(out)
    if args.rank:
        # Stored in bf16 (half the size); generation runs in bf16 anyway.
        weights = out / "adapter_model.safetensors"
        save_file({k: v.to(torch.bfloat16) for k, v in load_file(weights).items()}, weights)
        (out / "README.md").unlink(missing_ok=True)  # peft's empty template; MODEL_CARD.md is the card
    else:
        tokenizer.save_pretrained(out)
    (out / "training_log.json").write_text(json.dumps({"args": vars(args), "device": str(device), "log": log}, indent=1))
    shutil.rmtree(checkpoint)  # training finished: only the weights are kept


if __name__ == "__main__":
    main()
