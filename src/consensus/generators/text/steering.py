"""Token-level consensus: the engine steps a causal LM one token at a time, the ensemble choosing each next token
among the LM's proposals.

Each engine iteration is one token. ``TokenSteps`` proposes the LM's k most likely next tokens as
candidate continuations (the text so far plus that token); the ensemble scores them in one batched
call; a token feedback form picks one: ``TokenReweight`` (gradient-free, the product of the LM and
the scorers' target softmax(−E/τ)) or ``CacheShift`` (ZeroCap's gradient steps on the LM's
key/value cache). With no ensemble and k = 1 it is greedy decoding, the LM alone.

The candidate meaning "stop here" (end-of-sequence, or a token whose text reaches a stop string)
is scored as the text so far, so the scorers also decide when the answer is complete.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from consensus.core.budget import Budget
from consensus.core.engine import Proposals, run_consensus
from consensus.core.ensemble import Ensemble
from consensus.core.feedback import CacheShift, Feedback, TokenReweight
from consensus.core.trace import TraceWriter
from consensus.generators.text.causal_lm import CausalLMGenerator, import_transformers
from consensus.generators.text.decoding import first_stop

Cache = list[tuple[torch.Tensor, torch.Tensor]]
FeedbackName = Literal["gradient", "rescore", "none"]


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
    """How the scorers steer the LM: the token step's settings and the feedback form's.

    feedback: ``gradient`` (``CacheShift``), ``rescore`` (``TokenReweight``) or ``none`` (the LM alone).
    top_k: next-token candidates scored at each token (one batched scorer call of k texts).
    temperature: τ of the target softmax(−E/τ), in the energies' units. For z-scores across the k
        candidates (an Ensemble with normalization="zscore") the default 0.25 makes a candidate one
        standard deviation better e^4 ≈ 55 times more likely in the target; for energies that are
        already calibrated logits (the video-QA ensemble, ``Ensemble.log_linear_pool``) use τ = 1.
    steps, step_size, grad_norm_power, kl_weight, fusion: ``CacheShift``'s settings.
    max_new_tokens: the answer's length limit (the engine's iteration budget).
    stop: strings that end the answer (cut before them).
    """

    feedback: FeedbackName = "gradient"
    top_k: int = 16
    temperature: float = 0.25
    steps: int = 3
    step_size: float = 0.3
    grad_norm_power: float = 0.9
    kl_weight: float = 0.2
    fusion: float = 0.99
    max_new_tokens: int = 8
    stop: tuple[str, ...] = ("\n",)

    def __post_init__(self) -> None:
        if self.feedback not in ("gradient", "rescore", "none"):
            raise ValueError(f"unknown feedback {self.feedback!r}; use gradient, rescore or none")
        if self.top_k < 1 or self.max_new_tokens < 1 or self.steps < 0:
            raise ValueError("top_k and max_new_tokens must be >= 1 and steps >= 0")
        if self.temperature <= 0 or self.step_size < 0 or self.kl_weight < 0 or not 0 <= self.fusion <= 1:
            raise ValueError("need temperature > 0, step_size >= 0, kl_weight >= 0 and 0 <= fusion <= 1")

    def forms(self) -> list[Feedback]:
        if self.feedback == "rescore":
            return [TokenReweight(self.temperature)]
        if self.feedback == "gradient":
            return [CacheShift(self.temperature, self.steps, self.step_size, self.grad_norm_power, self.kl_weight,
                               self.fusion)]
        return []


@dataclass
class TokenStep:
    """One decoding step: the candidate texts, their energies, the distributions, and the chosen candidate."""

    candidates: list[str]
    energies: list[float]
    lm_probs: list[float]
    final_probs: list[float]
    chosen: int


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
    if config.feedback != "none" and ensemble is None:
        raise ValueError(f"feedback={config.feedback!r} needs an ensemble of scorers; pass one, or use feedback='none'")
    steering = config.feedback != "none"
    steps = TokenSteps(lm, prompt, config.top_k if steering else 1, config.stop)
    record: list[TokenStep] = []
    ended = ["length"]

    def on_iteration(info: dict[str, Any]) -> None:
        proposals = info["proposals"]
        ended[0] = proposals.hooks.stops[proposals.alive()[0]] or "length"
        if steering:
            done = next(iter(info["feedback"].values()))
            record.append(TokenStep(proposals.candidates, info["energies"].total.tolist(), done["lm_probs"],
                                    done["final_probs"], done["chosen"]))
        if callback is not None:
            callback(info)

    start = time.perf_counter()
    result = run_consensus(steps, ensemble if steering else None, condition, feedback=config.forms(),
                           budget=Budget(iterations=config.max_new_tokens), callback=on_iteration, trace=trace,
                           item=item)
    scorer_seconds = sum(v for k, v in result.seconds.items() if k not in ("generator", "total", "loop"))
    seconds = {"lm": time.perf_counter() - start - scorer_seconds, "scorers": scorer_seconds}
    return SteeredAnswer(result.best, result.generator_tokens, ended[0], record, seconds)
