"""Token-level consensus: an ensemble of scorers steers a causal LM word by word (DESIGN.md §1).

At every generated token the LM's k most likely next tokens are the candidates. Each candidate
continuation (the text so far plus that token) is scored in one batched call; the energies become
a target distribution over the k tokens,

    q(i) = softmax(-E_i / τ)                                   (τ: ``temperature``)

and one of two feedback forms moves the LM toward it:

- ``gradient`` (ZeroCap, Tewel et al. 2022): a shift δ of the LM's key/value cache (the context
  of every token so far) takes ``steps`` normalised gradient steps on

      L(δ) = CE(q, p_δ) + λ · KL(p_δ || p_0),      CE(q, p_δ) = −Σ_i q(i) log p_δ(i)

  where p_δ is the next-token distribution with the shifted cache and p_0 the unshifted one
  (λ: ``kl_weight``, the fluency term). Each layer's key and value shift moves by
  ``−step_size · g / ‖g‖^grad_norm_power``, the per-tensor normalisation of ZeroCap. The token
  is then the argmax of the fused distribution p_δ^γ · p_0^(1−γ) (γ: ``fusion``), and the shifted
  cache is kept, so the steering of earlier words carries over to later ones. The scorers
  need no gradient: the gradient flows through the LM only.
- ``rescore`` (gradient-free): the token is the argmax over the k candidates of
  log p_0(i) + log q(i), a product of the LM and the scorers' target, with no backward pass.
- ``none``: greedy decoding, the LM alone (the baseline; the scorer is never called).

The candidate meaning "stop here" (end-of-sequence, or a token whose text reaches a stop string)
is scored as the text so far, so the scorers also decide when the answer is complete.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from consensus.generators.causal_lm import CausalLMGenerator, _first_stop, _import_transformers

Feedback = Literal["gradient", "rescore", "none"]
EnergyFn = Callable[[list[str]], torch.Tensor]


@dataclass(frozen=True)
class SteeringConfig:
    """How the scorers steer the LM.

    feedback: ``gradient`` (cache shift), ``rescore`` (gradient-free product) or ``none`` (LM alone).
    top_k: next-token candidates scored at each token (one batched scorer call of k texts).
    temperature: τ of the target softmax(−E/τ), in the energies' units. For z-scores across the k
        candidates (an Ensemble with normalization="zscore") the default 0.25 makes a candidate one
        standard deviation better e^4 ≈ 55 times more likely in the target; for energies that are
        already calibrated logits (the video-QA ensemble, consensus.vqa.experiment) use τ = 1.
    steps: gradient steps on the cache shift per token (``gradient`` only).
    step_size: the length of each normalised step.
    grad_norm_power: the exponent of the per-tensor gradient norm that divides the step
        (1: unit steps; ZeroCap's 0.9 lets larger gradients take slightly larger steps).
    kl_weight: λ, the weight of KL(p_δ || p_0) that keeps the shifted LM fluent.
    fusion: γ of the final distribution p_δ^γ · p_0^(1−γ); 1 trusts the shifted LM alone.
    max_new_tokens: the answer's length limit.
    stop: strings that end the answer (cut before them).
    """

    feedback: Feedback = "gradient"
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


@dataclass
class TokenStep:
    """One decoding step: the candidate texts, their energies, the target, and the chosen candidate."""

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


class SteeredDecoder:
    """Decodes one prompt at a time under the steering of an energy function over continuations.

    Args:
        generator: the causal LM (any transformers model wrapped in ``CausalLMGenerator``).
        config: the feedback form and its settings.
    """

    def __init__(self, generator: CausalLMGenerator, config: SteeringConfig = SteeringConfig()):
        self.generator = generator
        self.config = config
        # Only the cache shift gets gradients (torch.autograd.grad with the shift as inputs). The weights keep
        # requires_grad: switching it off sends CPU bf16 matmuls down a path measured 15x slower here.
        self.model = generator.model

    def decode(self, prompt: str, energy: EnergyFn | None = None) -> SteeredAnswer:
        """Continue ``prompt``; ``energy(texts)`` gives one energy per candidate continuation (lower is better)."""
        cfg = self.config
        if cfg.feedback != "none" and energy is None:
            raise ValueError(f"feedback={cfg.feedback!r} needs an energy function; pass one, or use feedback='none'")
        ids = self.generator.tokenizer(prompt, return_tensors="pt")["input_ids"].to(self.generator.device)
        if ids.shape[1] < 2:
            raise ValueError("the prompt must be at least two tokens long (the cache holds all but the last)")
        start, scorer_seconds = time.perf_counter(), 0.0
        past = self._prefill(ids[:, :-1])
        last = ids[:, -1:]
        generated: list[int] = []
        steps: list[TokenStep] = []
        text, ended = "", "length"
        for _ in range(cfg.max_new_tokens):
            with torch.no_grad():
                base_logp, advanced = self._step(past, last)
            candidates = base_logp.topk(cfg.top_k if cfg.feedback != "none" else 1).indices
            texts, stops = self._candidate_texts(generated, candidates.tolist())
            choice = 0
            if cfg.feedback != "none":
                scorer_start = time.perf_counter()
                energies = self._energies(energy, texts)
                scorer_seconds += time.perf_counter() - scorer_start
                target = torch.softmax(-energies / cfg.temperature, dim=0)
                if cfg.feedback == "rescore":
                    final = base_logp[candidates] + torch.log(target)
                else:
                    shifted_logp, advanced = self._shift(past, last, base_logp, candidates, target)
                    final = cfg.fusion * shifted_logp[candidates] + (1 - cfg.fusion) * base_logp[candidates]
                choice = int(final.argmax())
                steps.append(TokenStep(texts, energies.tolist(), base_logp[candidates].exp().tolist(),
                                       torch.softmax(final, 0).tolist(), choice))
            generated.append(int(candidates[choice]))
            text = texts[choice]
            if stops[choice] is not None:
                ended = stops[choice]
                break
            past, last = advanced, candidates[choice].view(1, 1)
        seconds = {"lm": time.perf_counter() - start - scorer_seconds, "scorers": scorer_seconds}
        return SteeredAnswer(text, len(generated), ended, steps, seconds)

    # -- the pieces ---------------------------------------------------------------------------

    def _candidate_texts(self, generated: list[int], candidates: list[int]) -> tuple[list[str], list[str | None]]:
        """The continuation text with each candidate appended, and whether that candidate ends it."""
        tokenizer, texts, stops = self.generator.tokenizer, [], []
        for tok in candidates:
            if tok in self.generator.eos_ids:
                texts.append(tokenizer.decode(generated, skip_special_tokens=True))
                stops.append("eos")
                continue
            text = tokenizer.decode([*generated, tok], skip_special_tokens=True)
            cut = _first_stop(text, self.config.stop)
            texts.append(text if cut is None else text[:cut])
            stops.append(None if cut is None else "stop")
        return [t.strip() for t in texts], stops

    @staticmethod
    def _energies(energy: EnergyFn, texts: list[str]) -> torch.Tensor:
        result = energy(texts)
        total = getattr(result, "total", result)  # an EnsembleEnergies, or a plain tensor
        total = torch.as_tensor(total, dtype=torch.float32).detach().cpu()
        if total.shape != (len(texts),):
            raise ValueError(f"the energy function returned shape {tuple(total.shape)} for {len(texts)} candidates")
        if not torch.isfinite(total).any():
            raise ValueError("every candidate got a non-finite energy; check the scorers (see Ensemble(nonfinite=...))")
        return torch.nan_to_num(total, nan=float("inf"))

    def _prefill(self, ids: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        cache = _import_transformers().DynamicCache(config=self.model.config)
        with torch.no_grad():
            self.model(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
        return [(layer.keys, layer.values) for layer in cache.layers]

    def _cache(self, past: list[tuple[torch.Tensor, torch.Tensor]]) -> Any:
        return _import_transformers().DynamicCache(ddp_cache_data=past, config=self.model.config)

    def _step(self, past: list[tuple[torch.Tensor, torch.Tensor]],
              last: torch.Tensor) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """Read the last token under ``past``: the next-token log-probs and the cache that now includes it."""
        cache = self._cache(past)
        logits = self.model(input_ids=last, past_key_values=cache, use_cache=True).logits[:, -1]
        return torch.log_softmax(logits.float(), dim=-1)[0], [(layer.keys, layer.values) for layer in cache.layers]

    def _shift(self, past: list[tuple[torch.Tensor, torch.Tensor]], last: torch.Tensor, base_logp: torch.Tensor,
               candidates: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, list[tuple[torch.Tensor, ...]]]:
        """Gradient steps on a key/value shift toward the target; the shifted log-probs and the advanced cache."""
        cfg = self.config
        deltas = [torch.zeros_like(t, dtype=torch.float32) for pair in past for t in pair]
        for _ in range(cfg.steps):
            for d in deltas:
                d.requires_grad_(True)
            logp, _ = self._step(_shifted(past, deltas), last)
            grads = torch.autograd.grad(self.loss(logp, base_logp, candidates, target), deltas)
            with torch.no_grad():
                deltas = [d - cfg.step_size * g / (g.norm() + 1e-15) ** cfg.grad_norm_power
                          for d, g in zip(deltas, grads)]
        with torch.no_grad():
            return self._step(_shifted(past, deltas), last)

    def loss(self, logp: torch.Tensor, base_logp: torch.Tensor, candidates: torch.Tensor,
             target: torch.Tensor) -> torch.Tensor:
        """L = CE(q, p_δ) over the candidates + λ · KL(p_δ || p_0) over the vocabulary."""
        cross_entropy = -(target * logp[candidates]).sum()
        kl = (logp.exp() * (logp - base_logp)).sum()
        return cross_entropy + self.config.kl_weight * kl


def _shifted(past: Sequence[tuple[torch.Tensor, torch.Tensor]],
             deltas: Sequence[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """past + δ (δ flat: key, value, key, value, ...), added in float32, returned in the cache's dtype.

    A bf16 cache rounds the shift: on Gemma 3 270M steered by the video-QA ensemble, the applied
    shift differs from δ by a median 24% of its norm (4 training questions, 24 shifts), so its
    direction survives; the gradient passes through the cast unchanged."""
    return [((k.float() + deltas[2 * i]).to(k.dtype), (v.float() + deltas[2 * i + 1]).to(v.dtype))
            for i, (k, v) in enumerate(past)]
