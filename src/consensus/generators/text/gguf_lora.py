"""A PEFT LoRA adapter as a GGUF LoRA file, which llama.cpp applies at run time on top of the unchanged base GGUF.

llama.cpp reads an adapter as pairs ``<base tensor>.lora_a`` (shape r x in) and ``<base tensor>.lora_b`` (out x r)
with the adapter's alpha, and adds ``(alpha / r) * B @ A @ x`` beside each base matmul: the base weights keep their
own quantisation (no re-quantised merged copy) and the low-rank update is computed in float32 from the adapter's own
numbers. The PEFT names map to the GGUF ones through the gguf package's tensor-name map of the base's architecture,
as llama.cpp's ``convert_lora_to_gguf.py`` does; Gemma-style architectures need no permutation of q and k.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

PEFT_PREFIX = "base_model.model."


def convert_peft_lora(adapter: str | Path, base_gguf: str | Path, out: str | Path) -> Path:
    """Write ``adapter`` (a PEFT LoRA directory: adapter_config.json, adapter_model.safetensors) as a GGUF LoRA for
    the model in ``base_gguf`` to ``out`` (atomically); returns ``out``."""
    import gguf
    import torch
    from safetensors.torch import load_file

    adapter, out = Path(adapter), Path(out)
    config = json.loads((adapter / "adapter_config.json").read_text())
    if config.get("peft_type") != "LORA" or config.get("use_dora") or config.get("use_rslora"):
        raise ValueError(f"{adapter} is not a plain LoRA adapter (peft_type {config.get('peft_type')!r}, DoRA or "
                         "rsLoRA): llama.cpp applies plain LoRA only; merge it into the weights instead")
    if config.get("rank_pattern") or config.get("alpha_pattern"):
        raise ValueError(f"{adapter} gives some layers their own rank or alpha, which a GGUF LoRA cannot say")
    reader = gguf.GGUFReader(str(base_gguf))
    arch = _field(reader, "general.architecture")
    blocks = int(_field(reader, f"{arch}.block_count"))
    names = gguf.get_tensor_name_map({v: k for k, v in gguf.MODEL_ARCH_NAMES.items()}[arch], blocks)
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in load_file(str(adapter / "adapter_model.safetensors")).items():
        part = "a" if ".lora_A." in key else "b" if ".lora_B." in key else None
        if part is None:
            raise ValueError(f"{adapter}: {key} is not a LoRA A or B matrix; llama.cpp cannot apply it")
        module = key.removeprefix(PEFT_PREFIX).split(".lora_")[0]
        name = names.get_name(module + ".weight", try_suffixes=(".weight",))
        if name is None:
            raise ValueError(f"{adapter}: no {arch} tensor in the GGUF matches the adapter's module {module}")
        pairs.setdefault(name, {})[part] = tensor.float()
    partial = out.with_name(out.name + ".partial")
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(partial), arch)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(config["lora_alpha"]))
    for name, ab in sorted(pairs.items()):
        if set(ab) != {"a", "b"}:
            raise ValueError(f"{adapter}: {name} has no {'B' if 'a' in ab else 'A'} matrix")
        writer.add_tensor(name + ".lora_a", ab["a"].numpy())
        writer.add_tensor(name + ".lora_b", ab["b"].numpy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(partial, out)
    return out


def _field(reader, key: str):
    field = reader.get_field(key)
    if field is None:
        raise ValueError(f"{reader.path}: no {key} in the GGUF's metadata")
    return field.contents()
