"""Fine-tune Gemma 3 270M (base, offline) with LoRA on gsm_symbolic's *train* templates.

The paper's math generator was GPT-2 medium fine-tuned on GSM8K; the base 270M model solves
almost no gsm_symbolic problem (0/40 greedy), so selection would have nothing to select. This
script does what the paper did, on templates disjoint from the evaluation templates
(consensus.tasks.math.data.template_split). Seeded and resumable: it saves the adapter and the
optimiser state every --save-every steps and continues from there when started again.

    python scripts/train_math_lora.py --out src/consensus/zoo/weights/gemma-270m-gsm-lora
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from consensus.tasks.math.data import gsm_symbolic
from consensus.tasks.math.prompt import format_prompt
from consensus.zoo.gemma import gemma_dir


def batches(tokenizer, problems, batch_size, rng):
    order = list(range(len(problems)))
    rng.shuffle(order)
    for i in range(0, len(order) - batch_size + 1, batch_size):
        rows = []
        for j in order[i:i + batch_size]:
            p = problems[j]
            prompt = tokenizer(format_prompt(p.question))["input_ids"]
            target = tokenizer(p.solution.strip(), add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
            rows.append((prompt, target))
        width = max(len(a) + len(b) for a, b in rows)
        ids = torch.full((len(rows), width), tokenizer.pad_token_id)
        labels = torch.full((len(rows), width), -100)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, (a, b) in enumerate(rows):  # right padding: positions start at 0 in every row
            ids[r, :len(a) + len(b)] = torch.tensor(a + b)
            labels[r, len(a):len(a) + len(b)] = torch.tensor(b)
            mask[r, :len(a) + len(b)] = 1
        yield ids, mask, labels


def loss_on_targets(model, ids, mask, labels):
    """Cross-entropy on the solution tokens only; the 262k-way LM head runs on those positions alone."""
    hidden = model.base_model.model.model(input_ids=ids, attention_mask=mask).last_hidden_state
    shift_hidden, shift_labels = hidden[:, :-1], labels[:, 1:]
    keep = shift_labels != -100
    logits = model.base_model.model.lm_head(shift_hidden[keep]).float()
    return torch.nn.functional.cross_entropy(logits, shift_labels[keep])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="src/consensus/zoo/weights/gemma-270m-gsm-lora")
    ap.add_argument("--problems", type=int, default=1200)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--save-every", type=int, default=25)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(args.seed)
    out, state_path = Path(args.out), Path(args.out) / "training_state.pt"
    tokenizer = AutoTokenizer.from_pretrained(gemma_dir())
    base = AutoModelForCausalLM.from_pretrained(gemma_dir(), dtype=torch.float32)
    if state_path.exists():
        model = PeftModel.from_pretrained(base, out, is_trainable=True)
    else:
        config = LoraConfig(r=args.rank, lora_alpha=2 * args.rank, lora_dropout=0.05, task_type="CAUSAL_LM",
                            target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
        model = get_peft_model(base, config)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / 10) * 0.5 * (1 + math.cos(math.pi * min(s, args.steps) / args.steps)))
    step, log = 0, []
    if state_path.exists():
        state = torch.load(state_path, weights_only=False)
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        step, log = state["step"], state["log"]
        torch.set_rng_state(state["torch_rng"])
        print(f"resuming at step {step}")

    problems = gsm_symbolic("train", args.problems, seed=args.seed + 1)
    rng = random.Random(args.seed)
    stream = (b for _ in iter(int, 1) for b in batches(tokenizer, problems, args.batch_size, rng))
    for _ in range(step):  # replay the data order so a resumed run sees the same batches
        next(stream)
    start = time.time()
    while step < args.steps:
        ids, mask, labels = next(stream)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = loss_on_targets(model, ids, mask, labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        step += 1
        log.append({"step": step, "loss": round(loss.item(), 4), "lr": schedule.get_last_lr()[0]})
        print(f"step {step}/{args.steps} loss {loss.item():.4f} ({time.time() - start:.0f}s)", flush=True)
        if step % args.save_every == 0 or step == args.steps:
            model.save_pretrained(out)
            torch.save({"optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(), "step": step,
                        "log": log, "torch_rng": torch.get_rng_state()}, state_path)
    (out / "training_log.json").write_text(json.dumps({"args": vars(args), "log": log}, indent=1))
    state_path.unlink(missing_ok=True)  # training finished: only the adapter is kept
    # Stored in bf16 (half the size); generation runs in bf16 anyway.
    weights = out / "adapter_model.safetensors"
    save_file({k: v.to(torch.bfloat16) for k, v in load_file(weights).items()}, weights)
    (out / "README.md").unlink(missing_ok=True)  # peft's empty template; MODEL_CARD.md is the card


if __name__ == "__main__":
    main()
