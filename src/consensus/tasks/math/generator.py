"""The math experiment's generator: offline Gemma 3 270M with the project's GSM LoRA adapter, on any backend; and
the LM its LM verifier reads, the same with the verifier's own LoRA on top."""

from __future__ import annotations

import hashlib
from pathlib import Path

from consensus.generators import TextGenerator
from consensus.generators.text.stacked_lora import stack_loras
from consensus.scorers.text.lm_verifier import LM_VERIFIER_WEIGHTS
from consensus.zoo import WEIGHTS_DIR
from consensus.zoo.cache import cache_dir
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


def load_verifier_lm(weights: str | Path = LM_VERIFIER_WEIGHTS, backend: str = "auto") -> TextGenerator:
    """The LM whose states the LM verifier's head reads: the math generator with the verifier's LoRA (in ``weights``,
    trained on top of the GSM adapter by ``scripts/train_lm_verifier.py``) stacked onto the GSM adapter as one
    adapter (``stack_loras``), built once into the cache, keyed by both adapters' weights."""
    weights = Path(weights)
    adapters = [ADAPTER, weights]
    missing = [a for a in adapters if not (a / "adapter_model.safetensors").exists()]
    if missing:
        raise FileNotFoundError(f"no LoRA adapter in {missing[0]}; train the verifier's with "
                                "python scripts/train_lm_verifier.py")
    digest = hashlib.sha256(b"".join((a / "adapter_model.safetensors").read_bytes() for a in adapters))
    stacked = cache_dir() / "stacked-lora" / f"{ADAPTER.name}+{weights.name}-{digest.hexdigest()[:16]}"
    if not stacked.exists():
        stack_loras(adapters, stacked)
    return load_text_generator(None, backend=backend, adapter=stacked)
