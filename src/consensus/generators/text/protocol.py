"""The text-generator protocol: what the engine's text steps and the scorers need of a language model.

``CausalLMGenerator`` implements it over any transformers causal LM; a vLLM or llama.cpp backend
implements the same three members and plugs into solution- and step-level consensus unchanged.
Token-level feedback (``TokenReweight``, ``CacheShift``) needs the model's next-token distribution
step by step, which ``CausalLMGenerator.token_steps`` provides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch


@dataclass
class Completion:
    """One generated continuation.

    text: the continuation, cut before the first stop string.
    tokens: generator tokens spent on it (including the tokens of the stop string).
    ended: why it ended: ``"eos"`` (end-of-sequence token), ``"stop"`` (a stop string) or
        ``"length"`` (max_new_tokens reached).
    """

    text: str
    tokens: int
    ended: str


@runtime_checkable
class TextGenerator(Protocol):
    """Samples continuations that share a prefix, scores given continuations, and counts tokens."""

    name: str

    def sample(self, prompts: Sequence[str], n: int = 1, *, max_new_tokens: int = 128, temperature: float = 1.0,
               top_p: float = 1.0, top_k: int = 64, stop: Sequence[str] = (),
               generator: torch.Generator | None = None) -> list[list[Completion]]:
        """``n`` continuations of every prompt (one list per prompt); temperature 0 is greedy."""

    def continuation_logprobs(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[torch.Tensor]:
        """Per-token log-probabilities of each continuation given its prompt."""
