"""The text-generator protocol: what the engine's text steps and the scorers need of a language model.

Three backends implement it and plug into solution- and step-level consensus unchanged: ``CausalLMGenerator``
over any transformers causal LM, ``LlamaCppGenerator`` over a GGUF, and ``OpenAIGenerator`` over any
OpenAI-compatible server (vLLM, SGLang, llama.cpp's server, a hosted API).
Token-level feedback (``TokenReweight``, ``CacheShift``) needs the model's next-token distribution
step by step, which ``CausalLMGenerator.token_steps`` provides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch


class SampledText(str):
    """A generated text that carries what the model computed while sampling it: its token ids and each
    token's log-probability under the model (untempered: the log-softmax of the raw logits), given ``context``
    (the text it continues). A likelihood of the same model then needs no second forward pass
    (``CausalLMGenerator.continuation_logprobs`` uses them when the ids match its own tokenisation of
    context + text). Any edit of the text (slicing, concatenation) gives a plain ``str``, which is scored
    afresh; ``join`` keeps them across an extension the model sampled."""

    token_ids: tuple[int, ...]
    logprobs: torch.Tensor
    model: object
    context: str

    def __new__(cls, text: str, token_ids: Sequence[int], logprobs: torch.Tensor, model: object, context: str):
        self = super().__new__(cls, text)
        self.token_ids, self.logprobs, self.model, self.context = tuple(token_ids), logprobs, model, context
        return self

    def __reduce__(self):  # pickled (to a Ray worker, say) without its model, so it is scored afresh there
        return SampledText, (str(self), self.token_ids, self.logprobs, None, self.context)


def join(parent: str, more: str) -> str:
    """``parent + more``, still a ``SampledText`` when ``more`` was sampled right after ``parent`` (its context is
    parent's context + parent) by the same model."""
    if not parent:
        return more
    if (isinstance(parent, SampledText) and isinstance(more, SampledText) and more.model is parent.model
            and more.context == parent.context + parent):
        return SampledText(str(parent) + more, parent.token_ids + more.token_ids,
                           torch.cat([parent.logprobs, more.logprobs]), parent.model, parent.context)
    return str(parent) + more


@dataclass
class Completion:
    """One generated continuation.

    text: the continuation, cut before the first stop string (a ``SampledText`` when the cut falls between
        tokens, as it nearly always does).
    tokens: generator tokens spent on it (including the tokens of the stop string).
    ended: why it ended: ``"eos"`` (end-of-sequence token), ``"stop"`` (a stop string) or
        ``"length"`` (max_new_tokens reached).
    with_stop: for ``ended == "stop"``, the text followed by the stop string that ended it (a ``SampledText``
        when that falls between tokens).
    """

    text: str
    tokens: int
    ended: str
    with_stop: str | None = None


@runtime_checkable
class TextGenerator(Protocol):
    """Samples continuations that share a prefix, scores given continuations, and counts tokens."""

    name: str

    def sample(self, prompts: Sequence[str], n: int = 1, *, max_new_tokens: int = 128, temperature: float = 1.0,
               top_p: float = 1.0, top_k: int = 64, stop: Sequence[str] = (),
               generator: torch.Generator | Sequence[torch.Generator] | None = None) -> list[list[Completion]]:
        """``n`` continuations of every prompt (one list per prompt); temperature 0 is greedy. With one
        generator per prompt, each prompt's draws are those of a call of its own."""

    def continuation_logprobs(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[torch.Tensor]:
        """Per-token log-probabilities of each continuation given its prompt."""


@runtime_checkable
class ReadsHiddenStates(Protocol):
    """A text generator that also gives its last layer's hidden states (after the final norm) at each token of a
    continuation given its prompt: what a value head reads (``consensus.scorers.text.LMVerifier``). The torch and
    llama.cpp backends do; a served model behind the OpenAI API does not expose them."""

    def hidden_states(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[torch.Tensor]:
        """One float32 [continuation tokens, hidden size] tensor per prompt and continuation."""

