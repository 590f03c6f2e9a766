"""Train the LM verifier (consensus.scorers.text.lm_verifier): a LoRA on the math generator's top layers and a value
head, on the generator's own samples of training-template problems, as Cobbe et al. (2021) trained GSM8K's verifiers.

Data: ``scripts/sample_math_generator.py``'s samples of the verifier's training problems (gsm_symbolic's training
templates, left out of every evaluation), each labelled by whether its final answer is the gold one. One label per
sequence, the outcome: it is all a sample's answer says. ``--targets token`` puts it on every token's logit instead,
as Cobbe et al.'s value targets do (the model card has both measured). No gold solutions: their reference style
would teach the head a shortcut that no sample of the generator has.

The model: the math generator (Gemma 3 270M + the GSM LoRA) with its bottom layers frozen and a LoRA (rank ``--rank``)
on every projection of its top ``--layers`` layers, then the final norm, the mean over the solution's tokens and a
linear value head (``ValueHead``). The bottom layers' output is computed once per problem and kept in build/ (a cache,
resumable through the evaluation harness), so an epoch costs only the top layers' forward and backward. The loss is
the pooled outcome loss plus ``--within`` × a within-problem best-of-N loss (``outcome_loss``).

Validation: ``--held-out`` of the problems (new problems of the same templates, as setting (a)'s are) are held out;
after each epoch the ranking AUC (pooled, and within each problem) and best-of-N on them are measured, and the epoch
that ranks each problem's samples best (within-problem AUC) is kept. Training resumes from the last finished epoch
(``--checkpoint``). CUDA is used when present, the CPU otherwise. Writes the LoRA (PEFT format, the full model's
layer numbers), the head and a config with every epoch's numbers to ``--out``.

    python scripts/sample_math_generator.py --problems 280 --batch 8 --out build/math-verifier-samples.jsonl
    python scripts/train_lm_verifier.py --samples build/math-verifier-samples.jsonl
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import time
from pathlib import Path

import torch
from torch import nn

from consensus.core.files import write_atomic
from consensus.eval.harness import read_results, run_resumable
from consensus.eval.metrics import accuracy, ranking_auc, within_problem_auc
from consensus.generators.text.causal_lm import left_padded_positions as positions
from consensus.scorers.text.answers import extract_flexible, is_correct
from consensus.scorers.text.lm_verifier import LM_VERIFIER_WEIGHTS, TARGET_MODULES, ValueHead
from consensus.tasks.math.generator import load_math_generator
from consensus.tasks.math.prompt import format_prompt


def cache_bottom(samples: Path, cache: Path, top_layers: int, device: str) -> tuple[list[dict], object]:
    """Each problem's samples through the generator's bottom layers, once: the residual stream entering the top
    ``top_layers`` layers (bfloat16, left-padded as the torch backend pads them) with its mask, kept as one file a
    problem under ``cache``; the records say where, with the labels. Returns them and the generator."""
    problems = read_results(samples)
    if not problems:
        raise SystemExit(f"no samples in {samples}; draw them with scripts/sample_math_generator.py")
    lm = load_math_generator(backend="torch", dtype="float32")
    lm.model.to(device)
    first_top = lm.model.config.num_hidden_layers - top_layers
    folder = cache.with_suffix("")
    folder.mkdir(parents=True, exist_ok=True)

    @torch.inference_mode()
    def run(batch):
        for p in batch:
            ids, mask, n_solution = lm._pairs([format_prompt(p["question"])] * len(p["samples"]), p["samples"])
            ids, mask = ids.to(device), mask.to(device)
            states = lm.model.model(input_ids=ids, attention_mask=mask, position_ids=positions(mask),
                                    output_hidden_states=True).hidden_states[first_top]
            torch.save({"states": states.bfloat16().cpu(), "mask": mask.cpu(), "solution_tokens": n_solution},
                       folder / f"{p['id']}.pt")
            yield {"template": p["template"], "file": f"{p['id']}.pt",
                   "right": [is_correct(extract_flexible(t), p["gold"]) for t in p["samples"]]}

    rows = run_resumable(problems, lambda p: p["id"], run, cache, description="bottom layers",
                         settings={"lm": lm.name, "top_layers": top_layers, "samples": str(samples)})
    return [{**r, "file": folder / r["file"]} for r in rows], lm


class TopVerifier(nn.Module):
    """The generator's top layers (a LoRA on each projection) + the final norm, the mean over the solution's
    tokens and the value head: the part of the LM verifier that trains."""

    def __init__(self, lm, top_layers: int, rank: int):
        super().__init__()
        from peft import LoraConfig, get_peft_model
        from transformers.models.gemma3.modeling_gemma3 import Gemma3TextModel

        body = lm.model.model
        self.first = body.config.num_hidden_layers - top_layers
        config = copy.deepcopy(body.config)
        config.num_hidden_layers, config.layer_types = top_layers, config.layer_types[self.first:]
        config.vocab_size = 1  # it reads states, not tokens: no embedding table
        top = Gemma3TextModel(config)
        top.layers.load_state_dict(nn.ModuleList(body.layers[self.first:]).state_dict())
        top.norm.load_state_dict(body.norm.state_dict())
        self.top = get_peft_model(top, LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.05,
                                                  target_modules=list(TARGET_MODULES)))
        self.head = ValueHead(config.hidden_size)

    def token_logits(self, states: torch.Tensor, mask: torch.Tensor,
                     solution_tokens: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """The head's logit at every position ([rows, positions]: Cobbe et al.'s token-level values) and which
        positions are the solution's. The head is linear, so a solution's mean token logit is the logit of its mean
        state, what the scorer reads (``forward``)."""
        states, keep = self.solution_states(states, mask, solution_tokens)
        return self.head(states.flatten(0, 1)).view(mask.shape), keep

    def solution_states(self, states: torch.Tensor, mask: torch.Tensor,
                        solution_tokens: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        last = self.top(inputs_embeds=states.float(), attention_mask=mask,
                        position_ids=positions(mask)).last_hidden_state
        keep = torch.zeros_like(mask, dtype=torch.bool)
        for row, n in enumerate(solution_tokens):
            keep[row, mask.shape[1] - n:] = True  # left padding: the solution at the end
        return last, keep

    def features(self, states: torch.Tensor, mask: torch.Tensor, solution_tokens: list[int]) -> torch.Tensor:
        last, keep = self.solution_states(states, mask, solution_tokens)
        return (last * keep[..., None]).sum(1) / keep.sum(1, keepdim=True).clamp_min(1)

    def forward(self, states: torch.Tensor, mask: torch.Tensor, solution_tokens: list[int]) -> torch.Tensor:
        return self.head(self.features(states, mask, solution_tokens))

    def lora_state(self) -> dict[str, torch.Tensor]:
        """The LoRA in PEFT's naming for the whole causal LM, its layers numbered as in the full model."""
        from peft import get_peft_model_state_dict

        renamed = {}
        for key, value in get_peft_model_state_dict(self.top, save_embedding_layers=False).items():
            index, rest = key.removeprefix("base_model.model.layers.").split(".", 1)
            renamed[f"base_model.model.model.layers.{int(index) + self.first}.{rest}"] = value.detach().clone()
        return renamed


def load(row: dict, device: str) -> tuple[torch.Tensor, torch.Tensor, list[int], torch.Tensor]:
    saved = torch.load(row["file"], weights_only=True)
    return (saved["states"].to(device), saved["mask"].to(device), saved["solution_tokens"],
            torch.tensor(row["right"], dtype=torch.float32, device=device))


@torch.no_grad()
def measure(model: TopVerifier, rows: list[dict], device: str) -> dict:
    """On held-out problems: the ranking AUC pooled over every sample and within each problem, and best-of-N."""
    model.eval()
    logits = [model(*load(r, device)[:3]).cpu().tolist() for r in rows]
    right = [r["right"] for r in rows]
    picks = accuracy([row[max(range(len(ls)), key=ls.__getitem__)] for row, ls in zip(right, logits)])
    return {"problems": len(rows), "samples": sum(map(len, right)), "right": sum(map(sum, right)),
            "auc": ranking_auc(torch.tensor([v for ls in logits for v in ls]),
                               torch.tensor([v for row in right for v in row])),
            "auc_within_problems": within_problem_auc([[-v for v in ls] for ls in logits], right),
            f"best_of_{len(right[0])}": {"accuracy": 100 * picks.value, "low": 100 * picks.low,
                                         "high": 100 * picks.high},
            "pass_at_n": 100 * sum(any(row) for row in right) / len(right)}


@torch.no_grad()
def standardise(model: TopVerifier, rows: list[dict], device: str) -> None:
    """The head's standardisation: the untrained model's features' mean and spread over the training samples."""
    model.eval()
    features = torch.cat([model.features(*load(r, device)[:3]) for r in rows])
    model.head.mean.copy_(features.mean(0))
    model.head.scale.copy_(features.std(0).clamp_min(1e-4))


def outcome_loss(values: torch.Tensor, keep: torch.Tensor, right: torch.Tensor, balance: float, within: float,
                 token_level: bool) -> torch.Tensor:
    """One problem's loss from its samples' token logits ``values`` at the solution positions ``keep``.

    The outcome loss (logistic, right samples weighted by ``balance``): on each solution's logit ℓ, the mean of its
    token logits; or, ``token_level``, on every token's logit with its solution's label, averaged over each
    solution's tokens (Cobbe et al.'s value targets). Plus ``within`` × the best-of-N loss where the samples are
    mixed, −log Σ_right softmax(ℓ): −log of the chance that a pick drawn from the head's softmax over the problem's
    samples is right. The outcome loss alone can be lowered by telling easy questions from hard ones, which ranks no
    problem's own samples; the second term only by ranking them."""
    counts = keep.sum(1).clamp_min(1)
    logits = (values * keep).sum(1) / counts
    weight = values.new_tensor(balance)
    if token_level:
        per_token = nn.functional.binary_cross_entropy_with_logits(
            values, right[:, None].expand_as(values), pos_weight=weight, reduction="none")
        loss = ((per_token * keep).sum(1) / counts).mean()
    else:
        loss = nn.functional.binary_cross_entropy_with_logits(logits, right, pos_weight=weight)
    if within and 0 < right.sum() < len(right):
        loss = loss + within * (torch.logsumexp(logits, 0) - torch.logsumexp(logits[right.bool()], 0))
    return loss


def train_epoch(model: TopVerifier, optimiser, rows: list[dict], balance: float, args, seed: int,
                device: str) -> float:
    """One pass over the training problems in a seeded order, one problem's samples a step; the mean loss."""
    model.train()
    total = 0.0
    for row in random.Random(seed).sample(rows, len(rows)):
        states, mask, solution_tokens, right = load(row, device)
        values, keep = model.token_logits(states, mask, solution_tokens)
        loss = outcome_loss(values, keep, right, balance, args.within, args.targets == "token")
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        total += loss.item()
    return total / len(rows)


def ranks(result: dict) -> tuple[float, float]:
    """How well an epoch ranks held-out samples: within their problems first (what best-of-N and the ensemble's
    per-problem normalisation read), then pooled."""
    return result["validation"]["auc_within_problems"], result["validation"]["auc"]


def split(rows: list[dict], held_out: float, seed: int) -> tuple[list[dict], list[dict]]:
    held = set(random.Random(seed).sample(range(len(rows)), round(held_out * len(rows))))
    return [r for i, r in enumerate(rows) if i not in held], [r for i, r in enumerate(rows) if i in held]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=Path, default=Path("build/math-verifier-samples.jsonl"))
    ap.add_argument("--cache", type=Path, default=Path("build/lm-verifier-bottom.jsonl"))
    ap.add_argument("--checkpoint", type=Path, default=Path("build/lm-verifier-checkpoint.pt"))
    ap.add_argument("--layers", type=int, default=6, help="top layers that get the LoRA")
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--within", type=float, default=1.0, help="weight of the within-problem (best-of-N) loss")
    ap.add_argument("--targets", default="sequence", choices=("sequence", "token"),
                    help="the outcome label on each solution's logit, or on every token's (Cobbe et al.'s values)")
    ap.add_argument("--held-out", type=float, default=0.2, help="share of the problems held out for validation")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=LM_VERIFIER_WEIGHTS)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    rows, lm = cache_bottom(args.samples, args.cache, args.layers, device)
    train, validation = split(rows, args.held_out, args.seed)
    model = TopVerifier(lm, args.layers, args.rank).to(device)
    del lm
    lora = [p for p in model.top.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW([{"params": lora}, {"params": model.head.parameters(), "lr": 5 * args.lr}],
                                  lr=args.lr, weight_decay=0.01)
    state = {"epochs": [], "best": None}
    if args.checkpoint.exists():
        saved = torch.load(args.checkpoint, weights_only=False)
        model.load_state_dict(saved["model"])
        optimiser.load_state_dict(saved["optimiser"])
        state = saved["state"]
    else:
        standardise(model, train, device)
        state["epochs"].append({"epoch": 0, "validation": measure(model, validation, device)})
    right = sum(sum(r["right"]) for r in train)
    balance = (sum(len(r["right"]) for r in train) - right) / max(right, 1)
    for epoch in range(len(state["epochs"]), args.epochs + 1):
        began = time.perf_counter()
        loss = train_epoch(model, optimiser, train, balance, args, args.seed + epoch, device)
        result = {"epoch": epoch, "loss": loss, "validation": measure(model, validation, device),
                  "seconds": round(time.perf_counter() - began, 1)}
        state["epochs"].append(result)
        print(json.dumps(result), flush=True)
        if state["best"] is None or ranks(result) > ranks(state["best"]):
            state["best"] = {**result, "lora": model.lora_state(),
                             "head": {k: v.detach().cpu().clone() for k, v in model.head.state_dict().items()}}
        checkpoint = {"model": model.state_dict(), "optimiser": optimiser.state_dict(), "state": state}
        torch.save(checkpoint, args.checkpoint.with_suffix(".partial"))
        args.checkpoint.with_suffix(".partial").replace(args.checkpoint)
    write(args, state, rows, train, device)


def save_adapter(lora: dict[str, torch.Tensor], rank: int, out: Path) -> list[int]:
    """``TopVerifier.lora_state`` as a PEFT LoRA directory (float16: half the size, llama.cpp's and PEFT's update
    are computed in float32 from it); returns the layers it covers."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.half().contiguous() for k, v in lora.items()}, out / "adapter_model.safetensors")
    layers = sorted({int(k.split(".layers.")[1].split(".")[0]) for k in lora})
    adapter = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": rank, "lora_alpha": 2 * rank,
               "lora_dropout": 0.0, "target_modules": list(TARGET_MODULES), "layers_to_transform": layers,
               "bias": "none", "fan_in_fan_out": False, "use_dora": False, "use_rslora": False}
    write_atomic(out / "adapter_config.json", json.dumps(adapter, indent=1) + "\n")
    return layers


def write(args, state: dict, rows: list[dict], train: list[dict], device: str) -> None:
    """The best epoch's LoRA (on top of the GSM adapter), head and config, into ``args.out``."""
    best = state["best"]
    layers = save_adapter(best["lora"], args.rank, args.out)
    torch.save(best["head"], args.out / "head.pt")
    config = {"head": {"features": best["head"]["mean"].numel()},
              "lm": "gemma-3-270m (offline GGUF) + gemma-270m-gsm-lora, then this folder's LoRA on layers "
                    f"{layers[0]}-{layers[-1]}",
              "prompt": "consensus.tasks.math.prompt.format_prompt(question), zero-shot",
              "problems": len(rows), "training_problems": len(train), "samples": sum(len(r["right"]) for r in rows),
              "right_samples": sum(sum(r["right"]) for r in rows), "kept_epoch": best["epoch"],
              "epochs": state["epochs"], "device": device,
              "args": {k: str(v) for k, v in vars(args).items()}}
    write_atomic(args.out / "config.json", json.dumps(config, indent=1) + "\n")
    print(json.dumps({k: config[k] for k in ("kept_epoch", "epochs")}, indent=1))


if __name__ == "__main__":
    main()
