"""Token steering without gradients: reweight the LM's next-token distribution by the scorers' target.

At every token the candidates are the LM's k most likely next tokens (each read by the scorers as
the text so far plus that token). Their energies become a target distribution

    q(i) = softmax(−E_i / τ)                                   (τ: ``temperature``)

and the token is the argmax over the k candidates of log p_LM(i) + log q(i): the product of the LM
and the scorers' target (a product of experts), with no backward pass.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

import torch

from consensus.core.feedback.base import Context, Feedback


@dataclass(frozen=True)
class TokenChoice:
    """What a token form decided at one token: the chosen candidate (its index among the k), and over the k
    candidates the LM's probabilities, the scorers' target softmax(−E/τ) and the distribution it chose by."""

    chosen: int
    lm_probs: list[float]
    target: list[float]
    final_probs: list[float]


@runtime_checkable
class TokenHooks(Protocol):
    """What a token step exposes: the unshifted next-token log-probabilities ``[V]`` and the k
    candidates' token ids ``[k]``, in the LM's order (most likely first); and ``choice``, where the token form that
    picks the next token records its ``TokenChoice`` (None until one does)."""

    lm_logprobs: torch.Tensor
    candidate_ids: torch.Tensor
    choice: TokenChoice | None


def target_distribution(energies, temperature: float) -> torch.Tensor:
    """q = softmax(−E/τ) over the candidates, in float32; a dropped (+inf) candidate gets q = 0."""
    total = energies.total.detach().to(torch.float32).cpu()
    if not torch.isfinite(total).any():
        raise ValueError("every candidate got a non-finite energy; check the scorers (see Ensemble(nonfinite=...))")
    return torch.softmax(-total / temperature, dim=0)


def choose(proposals, final: torch.Tensor, target: torch.Tensor) -> dict[str, Any]:
    """Keep the argmax of ``final`` (the log-scores of the candidates) among those still alive, as every form acts
    on the survivors the forms before it left; record the choice on the hooks and return it for the trace."""
    alive = proposals.alive()
    choice = alive[int(final[alive].argmax())]
    proposals.survivors = [choice]
    hooks: TokenHooks = proposals.hooks
    lm = hooks.lm_logprobs[hooks.candidate_ids]
    hooks.choice = TokenChoice(choice, lm.exp().tolist(), target.tolist(), torch.softmax(final, 0).tolist())
    return asdict(hooks.choice)


class TokenReweight(Feedback):
    """Pick the next token by log p_LM + log softmax(−E/τ) over the k candidates.

    τ (``temperature``, CacheShift's too) is in the energies' units: for z-scores across the k candidates (an
    Ensemble with normalization="zscore") the default 0.25 makes a candidate one standard deviation better e^4 ≈ 55
    times more likely in the target; for energies that are already calibrated logits (the video-QA ensemble,
    ``Ensemble.log_linear_pool``) use τ = 1."""

    needs_hooks = TokenHooks

    def __init__(self, temperature: float = 0.25):
        if not temperature > 0:
            raise ValueError(f"TokenReweight needs temperature > 0, got {temperature}")
        self.temperature = temperature

    def __call__(self, proposals, energies, context: Context) -> dict[str, Any]:
        hooks: TokenHooks = proposals.hooks
        target = target_distribution(energies, self.temperature)
        final = hooks.lm_logprobs[hooks.candidate_ids] + torch.log(target)
        return choose(proposals, final, target)
