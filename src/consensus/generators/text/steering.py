"""Token-level consensus: the engine steps a causal LM one token at a time, the ensemble choosing each next token
among the LM's proposals.

Each engine iteration is one token. ``TokenSteps`` proposes the LM's k most likely next tokens as
candidate continuations (the text so far plus that token); the ensemble scores them in one batched
call; the chain of feedback forms, as for every other step, ends in a token form that picks one:
``TokenReweight`` (gradient-free, the product of the LM and the scorers' target softmax(−E/τ)) or
``CacheShift`` (ZeroCap's gradient steps on the LM's key/value cache). With no forms it is greedy
decoding, the LM alone.

The candidate meaning "stop here" (end-of-sequence, or a token whose text reaches a stop string)
is scored as the text so far, so the scorers also decide when the answer is complete.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from consensus.core.budget import Budget
from consensus.core.engine import Proposals, run_consensus
from consensus.core.ensemble import Ensemble
from consensus.core.feedback import Feedback
from consensus.core.feedback.token_reweight import TokenChoice
from consensus.core.trace import TraceWriter
from consensus.generators.text.causal_lm import CausalLMGenerator, import_transformers
from consensus.generators.text.decoding import first_stop

Cache = list[tuple[torch.Tensor, torch.Tensor]]


@dataclass
class TokenState:
    """One sequence being decoded: its tokens so far, the cache of all but the last, and the last."""

    generated: list[int]
    past: Cache
    last: torch.Tensor


@dataclass
class TokenStepHooks:
    """A token step's hooks, following ``ShiftableTokenHooks`` (``consensus.core.feedback.cache_shift``): what
    ``TokenReweight`` and ``CacheShift`` act through."""

    lm_logprobs: torch.Tensor
    candidate_ids: torch.Tensor
    advanced: Cache
    stops: list[str | None]
    steps: TokenSteps
    state: TokenState
    choice: TokenChoice | None = None

    def zero_shift(self) -> list[torch.Tensor]:
        return [torch.zeros_like(t, dtype=torch.float32) for pair in self.state.past for t in pair]

    def logprobs_under(self, deltas: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.steps.read(_shifted(self.state.past, deltas), self.state.last)[0]

    def keep_shift(self, deltas: Sequence[torch.Tensor]) -> torch.Tensor:
        with torch.no_grad():
            logp, self.advanced = self.steps.read(_shifted(self.state.past, deltas), self.state.last)
        return logp


class TokenSteps:
    """The engine's step for token-level feedback over a causal LM: one token per iteration.

    Args:
        lm: the causal LM (any transformers model wrapped in ``CausalLMGenerator``).
        prompt: the text the answer continues.
        top_k: next-token candidates proposed (and scored) per step.
        stop: strings that end the answer (cut before them).
    """

    def __init__(self, lm: CausalLMGenerator, prompt: str, top_k: int = 16, stop: Sequence[str] = ("\n",)):
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        self.lm, self.top_k, self.stop = lm, top_k, tuple(stop)
        # Only the cache shift gets gradients (torch.autograd.grad with the shift as inputs). The weights keep
        # requires_grad: switching it off sends CPU bf16 matmuls down a path measured 15x slower here.
        self.model = lm.model
        self.ids = lm.tokenizer(prompt, return_tensors="pt")["input_ids"].to(lm.device)
        if self.ids.shape[1] < 2:
            raise ValueError("the prompt must be at least two tokens long (the cache holds all but the last)")

    def __call__(self, condition: Any, population: list[TokenState] | None, generator: torch.Generator) -> Proposals:
        if population is None:
            population = [TokenState([], self.prefill(self.ids[:, :-1]), self.ids[:, -1:])]
        if len(population) != 1:
            raise ValueError(f"token steps decode one sequence at a time, got a population of {len(population)}")
        state = population[0]
        with torch.no_grad():
            logp, advanced = self.read(state.past, state.last)
        candidates = logp.topk(self.top_k).indices
        texts, stops = self.candidate_texts(state.generated, candidates.tolist())
        hooks = TokenStepHooks(logp, candidates, advanced, stops, self, state)

        def advance(survivors: list[int]) -> list[TokenState]:
            return [TokenState([*state.generated, int(candidates[i])], hooks.advanced, candidates[i].view(1, 1))
                    for i in survivors]

        return Proposals(texts, tokens=1, complete=[s is not None for s in stops], hooks=hooks, advance=advance)

    def candidate_texts(self, generated: list[int], candidates: list[int]) -> tuple[list[str], list[str | None]]:
        """The continuation text with each candidate appended, and whether (and why) that candidate ends it."""
        tokenizer, texts, stops = self.lm.tokenizer, [], []
        for tok in candidates:
            if tok in self.lm.eos_ids:
                texts.append(tokenizer.decode(generated, skip_special_tokens=True))
                stops.append("eos")
                continue
            text = tokenizer.decode([*generated, tok], skip_special_tokens=True)
            cut, _ = first_stop(text, self.stop)
            texts.append(text if cut is None else text[:cut])
            stops.append(None if cut is None else "stop")
        return [t.strip() for t in texts], stops

    def prefill(self, ids: torch.Tensor) -> Cache:
        cache = import_transformers().DynamicCache(config=self.model.config)
        with torch.no_grad():
            self.model(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
        return [(layer.keys, layer.values) for layer in cache.layers]

    def read(self, past: Cache, last: torch.Tensor) -> tuple[torch.Tensor, Cache]:
        """Read the last token under ``past``: the next-token log-probs and the cache that now includes it."""
        cache = import_transformers().DynamicCache(ddp_cache_data=past, config=self.model.config)
        logits = self.model(input_ids=last, past_key_values=cache, use_cache=True).logits[:, -1]
        return torch.log_softmax(logits.float(), dim=-1)[0], [(layer.keys, layer.values) for layer in cache.layers]


def _shifted(past: Sequence[tuple[torch.Tensor, torch.Tensor]], deltas: Sequence[torch.Tensor]) -> Cache:
    """past + δ (δ flat: key, value, key, value, ...), added in float32, returned in the cache's dtype.

    A bf16 cache rounds the shift: on Gemma 3 270M steered by the video-QA ensemble, the applied
    shift differs from δ by a median 24% of its norm (4 training questions, 24 shifts), so its
    direction survives; the gradient passes through the cast unchanged."""
    return [((k.float() + deltas[2 * i]).to(k.dtype), (v.float() + deltas[2 * i + 1]).to(v.dtype))
            for i, (k, v) in enumerate(past)]


@dataclass(frozen=True)
class SteeringConfig:
    """How the LM is steered token by token: the chain of feedback forms and the token step's settings.

    feedback: the forms, in order, acting on each token's k candidates; the chain must leave one, e.g.
        ``[TokenReweight(τ)]`` (gradient-free) or ``[CacheShift(τ, ...)]`` (ZeroCap's gradient), optionally after
        forms that only narrow the field (``TopK``). Empty: the LM alone, greedy, with no scorer called.
    top_k: next-token candidates scored at each token (one batched scorer call of k texts).
    max_new_tokens: the answer's length limit (the engine's iteration budget).
    stop: strings that end the answer (cut before them).
    """

    feedback: Sequence[Feedback] = ()
    top_k: int = 16
    max_new_tokens: int = 8
    stop: tuple[str, ...] = ("\n",)

    def __post_init__(self) -> None:
        forms = (self.feedback,) if isinstance(self.feedback, Feedback) else tuple(self.feedback)
        for form in forms:
            if not isinstance(form, Feedback):
                raise TypeError(f"{form!r} is not a feedback form; give forms such as [TokenReweight(1.0)] or "
                                "[CacheShift(1.0)], or none for the LM alone")
        object.__setattr__(self, "feedback", forms)
        if self.top_k < 1 or self.max_new_tokens < 1:
            raise ValueError("top_k and max_new_tokens must be >= 1")

    @property
    def steering(self) -> bool:
        """Whether any form acts (else the LM decodes alone, greedily)."""
        return bool(self.feedback)


@dataclass
class TokenStep:
    """One decoding step: the candidate texts, their energies, and what the token form decided."""

    candidates: list[str]
    energies: list[float]
    choice: TokenChoice


@dataclass
class SteeredAnswer:
    """A steered continuation: its text, tokens spent, why it ended, and the per-token record."""

    text: str
    tokens: int
    ended: str
    steps: list[TokenStep] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def steer(lm: CausalLMGenerator, prompt: str, ensemble: Ensemble | None, condition: Any,
          config: SteeringConfig = SteeringConfig(), *, trace: TraceWriter | None = None, item: Any = None,
          callback: Callable[[dict[str, Any]], None] | None = None) -> SteeredAnswer:
    """Continue ``prompt`` one token at a time under the ensemble's feedback on ``condition``."""
    if config.steering and ensemble is None:
        raise ValueError(f"feedback {[form.name for form in config.feedback]} needs an ensemble of scorers; pass "
                         "one, or no feedback for the LM alone")
    steps = TokenSteps(lm, prompt, config.top_k if config.steering else 1, config.stop)
    record: list[TokenStep] = []
    ended = ["length"]

    def on_iteration(info: dict[str, Any]) -> None:
        proposals = info["proposals"]
        hooks: TokenStepHooks = proposals.hooks
        ended[0] = hooks.stops[proposals.alive()[0]] or "length"
        if config.steering:
            if hooks.choice is None:
                raise ValueError(f"no form in {[form.name for form in config.feedback]} picked a token; end the "
                                 "chain with a token form (TokenReweight or CacheShift)")
            record.append(TokenStep(proposals.candidates, info["energies"].total.tolist(), hooks.choice))
        if callback is not None:
            callback(info)

    start = time.perf_counter()
    result = run_consensus(steps, ensemble if config.steering else None, condition, feedback=config.feedback,
                           budget=Budget(iterations=config.max_new_tokens), callback=on_iteration, trace=trace,
                           item=item)
    scorer_seconds = sum(v for k, v in result.seconds.items() if k not in ("generator", "total", "loop"))
    seconds = {"lm": time.perf_counter() - start - scorer_seconds, "scorers": scorer_seconds}
    return SteeredAnswer(result.best, result.generator_tokens, ended[0], record, seconds)
