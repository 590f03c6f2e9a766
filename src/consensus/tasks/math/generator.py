"""The math experiment's generator: offline Gemma 3 270M with the project's GSM LoRA adapter, on any backend."""

from __future__ import annotations

from pathlib import Path

from consensus.generators import TextGenerator
from consensus.zoo import WEIGHTS_DIR
from consensus.zoo.text_generators import load_text_generator

ADAPTER = WEIGHTS_DIR / "gemma-270m-gsm-lora"


def load_math_generator(model: str | None = None, adapter: str | Path | None = None, dtype: str = "auto",
                        backend: str = "auto", base_url: str | None = None) -> TextGenerator:
    """``model=None``: the offline Gemma with the committed GSM adapter (see its model card), on llama.cpp where it
    is installed. Any other model plugs in the same way (``consensus.zoo.text_generators.load_text_generator``)."""
    if model is None:
        if not (ADAPTER / "adapter_config.json").exists():
            raise FileNotFoundError(f"the GSM adapter is missing from {ADAPTER}; train it with "
                                    "python scripts/train_math_generator.py")
        adapter = adapter or ADAPTER
    return load_text_generator(model, backend=backend, adapter=adapter, dtype=dtype, base_url=base_url)
