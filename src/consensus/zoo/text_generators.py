"""Text generators by backend: transformers on torch, llama.cpp over a GGUF, or an OpenAI-compatible server.

``backend="auto"`` takes llama.cpp for the offline Gemma where llama-cpp-python is installed (decoding is
memory-bound, and the Q4_K_M GGUF is a quarter of float32's bytes) and for any ``.gguf`` model, torch otherwise.
Gradient feedback (a cache shift) needs torch, which can differentiate; callers that need it ask for torch.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

from consensus.generators.text.protocol import TextGenerator
from consensus.zoo.cache import cache_dir

BACKENDS = ("auto", "torch", "llama.cpp", "openai")


def resolve_backend(backend: str, model: str | None = None) -> str:
    """The backend ``auto`` stands for, given the model (None: the offline Gemma); any other name as it is."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown text backend {backend!r}; use one of {', '.join(BACKENDS)}")
    if backend != "auto":
        return backend
    if model is None:
        return "llama.cpp" if importlib.util.find_spec("llama_cpp") is not None else "torch"
    return "llama.cpp" if str(model).endswith(".gguf") else "torch"


def load_text_generator(model: str | None = None, *, backend: str = "auto", adapter: str | Path | None = None,
                        dtype: str = "auto", base_url: str | None = None) -> TextGenerator:
    """A text generator: ``model`` None is the offline Gemma 3 270M; else a transformers name or directory (torch),
    a GGUF file (llama.cpp) or the name a server gives its model (openai, at ``base_url``). ``adapter`` is a PEFT
    LoRA directory (merged by torch, converted to a GGUF LoRA for llama.cpp) or, for llama.cpp, a GGUF LoRA file."""
    backend = resolve_backend(backend, model)
    if backend == "openai":
        from consensus.generators.text.openai_server import OpenAIGenerator

        if base_url is None or model is None:
            raise ValueError("the openai backend needs the server's address and its model's name: "
                             "--base-url http://host:port/v1 --model NAME")
        if adapter is not None:
            raise ValueError("the openai backend serves the server's model as it is: load adapters on the server")
        return OpenAIGenerator(base_url, model)
    if model is None:
        from consensus.zoo.gemma import load_gemma

        return load_gemma(dtype=dtype, adapter=adapter, backend=backend)
    if backend == "llama.cpp":
        from consensus.generators.text.llama_cpp import LlamaCppGenerator

        lora = None if adapter is None else adapter if str(adapter).endswith(".gguf") else gguf_adapter(adapter, model)
        return LlamaCppGenerator(model, lora=lora)
    from consensus.generators import CausalLMGenerator

    return CausalLMGenerator.from_pretrained(model, dtype=dtype, adapter=None if adapter is None else str(adapter))


def gguf_adapter(adapter: str | Path, base_gguf: str | Path) -> Path:
    """A PEFT LoRA adapter as a GGUF LoRA for ``base_gguf``, converted once into the cache (keyed by the adapter's
    weights, so a retrained adapter is converted again)."""
    from consensus.generators.text.gguf_lora import convert_peft_lora

    weights = Path(adapter) / "adapter_model.safetensors"
    if not weights.exists():
        raise FileNotFoundError(f"no adapter_model.safetensors in {adapter}: give a PEFT LoRA adapter directory")
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:16]
    target = cache_dir() / "gguf-lora" / f"{Path(adapter).name}-{digest}.gguf"
    return target if target.exists() else convert_peft_lora(adapter, base_gguf, target)
