"""Token steering by gradient (ZeroCap, Tewel et al. 2022): shift the LM's key/value cache toward the target.

With the target q(i) = softmax(−E_i/τ) over the k candidate next tokens (``token_reweight``), a
shift δ of the LM's key/value cache (the context of every token so far) takes ``steps`` normalised
gradient steps on

    L(δ) = CE(q, p_δ) + λ · KL(p_δ || p_0),      CE(q, p_δ) = −Σ_i q(i) log p_δ(i)

where p_δ is the next-token distribution with the shifted cache and p_0 the unshifted one (λ:
``kl_weight``, the fluency term). Each layer's key and value shift moves by
``−step_size · g / ‖g‖^grad_norm_power``, ZeroCap's per-tensor normalisation. The token is the argmax
of the fused distribution p_δ^γ · p_0^(1−γ) (γ: ``fusion``), and the shifted cache is kept, so the
steering of earlier words carries over to later ones. The scorers need no gradient: it flows
through the LM only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import torch

from consensus.core.feedback.base import Context, Feedback
from consensus.core.feedback.token_reweight import TokenHooks, choose, target_distribution


@runtime_checkable
class ShiftableTokenHooks(TokenHooks, Protocol):
    """A token step whose cache can be shifted: ``shift_shapes`` gives the zero shift (one float32 tensor
    per cached key and value), ``logprobs_under(deltas)`` the next-token log-probabilities with the cache
    shifted by ``deltas`` (differentiable in them), and ``keep_shift(deltas)`` makes the shifted cache
    the one the chosen token extends."""

    def zero_shift(self) -> list[torch.Tensor]: ...

    def logprobs_under(self, deltas: Sequence[torch.Tensor]) -> torch.Tensor: ...

    def keep_shift(self, deltas: Sequence[torch.Tensor]) -> torch.Tensor: ...


def steering_loss(logp: torch.Tensor, base_logp: torch.Tensor, candidates: torch.Tensor, target: torch.Tensor,
                  kl_weight: float) -> torch.Tensor:
    """L = CE(q, p_δ) over the candidates + λ · KL(p_δ || p_0) over the vocabulary."""
    cross_entropy = -(target * logp[candidates]).sum()
    kl = (logp.exp() * (logp - base_logp)).sum()
    return cross_entropy + kl_weight * kl


class CacheShift(Feedback):
    """ZeroCap's cache shift; the settings are the module docstring's (τ, steps, step size, norm power, λ, γ)."""

    needs_hooks = ShiftableTokenHooks

    def __init__(self, temperature: float = 0.25, steps: int = 3, step_size: float = 0.3,
                 grad_norm_power: float = 0.9, kl_weight: float = 0.2, fusion: float = 0.99):
        if not temperature > 0 or steps < 0 or step_size < 0 or kl_weight < 0 or not 0 <= fusion <= 1:
            raise ValueError("CacheShift needs temperature > 0, steps >= 0, step_size >= 0, kl_weight >= 0 and "
                             "0 <= fusion <= 1")
        self.temperature, self.steps, self.step_size = temperature, steps, step_size
        self.grad_norm_power, self.kl_weight, self.fusion = grad_norm_power, kl_weight, fusion

    def __call__(self, proposals, energies, context: Context) -> dict[str, Any]:
        hooks: ShiftableTokenHooks = proposals.hooks
        target = target_distribution(energies, self.temperature)
        deltas = self.optimise(hooks, target)
        shifted = hooks.keep_shift(deltas)
        ids = hooks.candidate_ids
        final = self.fusion * shifted[ids] + (1 - self.fusion) * hooks.lm_logprobs[ids]
        return choose(proposals, final, target)

    def optimise(self, hooks: ShiftableTokenHooks, target: torch.Tensor) -> list[torch.Tensor]:
        """``steps`` normalised gradient steps on δ from zero."""
        deltas = hooks.zero_shift()
        for _ in range(self.steps):
            for d in deltas:
                d.requires_grad_(True)
            with torch.enable_grad():
                logp = hooks.logprobs_under(deltas)
                loss = steering_loss(logp, hooks.lm_logprobs, hooks.candidate_ids, target, self.kl_weight)
                grads = torch.autograd.grad(loss, deltas)
            with torch.no_grad():
                deltas = [d - self.step_size * g / (g.norm() + 1e-15) ** self.grad_norm_power
                          for d, g in zip(deltas, grads)]
        return deltas
