"""PEFT LoRA adapters of one base model as one adapter whose update is their sum.

A LoRA adds ΔW = s · B · A to a module's weight (A: r × in, B: out × r, s = alpha / r). Adapters on the same module add:

    s₁ B₁ A₁ + s₂ B₂ A₂ = [s₁ B₁ | s₂ B₂] · [A₁ ; A₂]

one LoRA of rank r₁ + r₂ with alpha = r₁ + r₂ (s = 1), exactly. A module that some adapter leaves alone gets zeros in
that adapter's rows of A and columns of B, so every module has the one rank that a plain PEFT config and llama.cpp's
GGUF LoRA can say. This puts an adapter trained on top of another (the LM verifier's, on the GSM generator's) onto
the base model in one piece: llama.cpp applies one adapter per model, and the torch backend merges one.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

A, B = ".lora_A.weight", ".lora_B.weight"


def stack_loras(adapters: Sequence[str | Path], out: str | Path) -> Path:
    """Write the sum of ``adapters`` (PEFT LoRA directories of one base model) as one adapter directory ``out``
    (atomically); returns ``out``."""
    import torch
    from safetensors.torch import load_file, save_file

    configs = [_plain_config(Path(a)) for a in adapters]
    weights = [load_file(str(Path(a) / "adapter_model.safetensors")) for a in adapters]
    modules = sorted({key.removesuffix(A) for w in weights for key in w if key.endswith(A)})
    ranks = [c["r"] for c in configs]
    stacked = {}
    for module in modules:
        shapes = {(w[module + A].shape[1], w[module + B].shape[0]) for w in weights if module + A in w}
        if len(shapes) != 1:
            raise ValueError(f"the adapters disagree on the shape of {module}: {sorted(shapes)}")
        [(inputs, outputs)] = shapes
        parts = [(w[module + A].float(), w[module + B].float() * c["lora_alpha"] / c["r"]) if module + A in w
                 else (torch.zeros(r, inputs), torch.zeros(outputs, r)) for w, c, r in zip(weights, configs, ranks)]
        stacked[module + A] = torch.cat([a for a, _ in parts]).contiguous()
        stacked[module + B] = torch.cat([b for _, b in parts], dim=1).contiguous()
    targets = sorted({name for c in configs for name in c["target_modules"]})
    config = {**configs[0], "r": sum(ranks), "lora_alpha": sum(ranks), "target_modules": targets,
              "layers_to_transform": None, "lora_dropout": 0.0, "inference_mode": True}
    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    save_file(stacked, str(partial / "adapter_model.safetensors"))
    (partial / "adapter_config.json").write_text(json.dumps(config, indent=1) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    os.replace(partial, out)
    return out


def _plain_config(adapter: Path) -> dict:
    try:
        config = json.loads((adapter / "adapter_config.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise FileNotFoundError(f"{adapter} is not a PEFT adapter directory ({e})") from e
    if config.get("peft_type") != "LORA" or config.get("use_dora") or config.get("use_rslora"):
        raise ValueError(f"{adapter} is not a plain LoRA adapter; only plain LoRA updates add up to one LoRA")
    if config.get("rank_pattern") or config.get("alpha_pattern"):
        raise ValueError(f"{adapter} gives some modules their own rank or alpha; stack only uniform adapters")
    if not isinstance(config.get("target_modules"), list):
        raise ValueError(f"{adapter} names its modules by a pattern, not a list; stack only adapters that list them")
    return config
