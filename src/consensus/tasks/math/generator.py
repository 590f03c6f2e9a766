"""The math experiment's generator: offline Gemma 3 270M with the project's GSM LoRA adapter."""

from __future__ import annotations

from pathlib import Path

from consensus.generators import CausalLMGenerator
from consensus.zoo import WEIGHTS_DIR
from consensus.zoo.gemma import load_gemma

ADAPTER = WEIGHTS_DIR / "gemma-270m-gsm-lora"


def load_math_generator(model: str | None = None, adapter: str | Path | None = None,
                        dtype: str = "bfloat16") -> CausalLMGenerator:
    """``model=None``: the offline Gemma with the committed GSM adapter (see its model card).
    Any other transformers causal LM by name or path plugs in the same way, with an optional adapter."""
    if model is None:
        if not (ADAPTER / "adapter_config.json").exists():
            raise FileNotFoundError(f"the GSM adapter is missing from {ADAPTER}; train it with "
                                    "python scripts/train_math_generator.py")
        return load_gemma(dtype=dtype, adapter=adapter or ADAPTER)
    return CausalLMGenerator.from_pretrained(model, dtype=dtype, adapter=None if adapter is None else str(adapter))
