"""Gradient guidance for diffusion: move the predicted clean sample along the ensemble's gradient.

At every denoising step the denoiser step (``consensus.generators.diffusion``) predicts the clean
sample x̂0 from x_t, the scorers read it (decoded to images in [0, 1]), and this form moves it:

1. Classifier guidance (Dhariwal & Nichol 2021, eq. 14) samples p(x_t) · exp(−s E) by correcting
   ε̂ = ε + s √(1−ᾱ) ∇_{x_t} E. With E read on x̂0 = (x_t − √(1−ᾱ) ε)/√ᾱ and ε held fixed,
   ∂x̂0/∂x_t = 1/√ᾱ, so ε̂ = ε + s √(1−ᾱ)/√ᾱ · ∇_x̂0 E, which is the same as moving the clean
   prediction:                    x̂0' = x̂0 − s (1−ᾱ)/ᾱ · ∇_x̂0 E.
   The factor (1−ᾱ)/ᾱ spans ten thousand to one over a schedule and, with the scorers' own scales,
   makes s impossible to choose; so the step is taken in x̂0 space with an explicit size
   λ(t) = scale · schedule(t/T):  x̂0' = x̂0 − λ(t) · ĝ.
2. ĝ is the ensemble's combined gradient (``Ensemble.gradient``): with ``balance`` every scorer's
   gradient is rescaled per sample to unit RMS before the weighted mean, so λ reads as "pixels moved
   per step" whatever the ensemble, and where the scorers disagree their pushes cancel: the consensus.
3. Guidance wraps the step's model function (x_t ↦ x̂0, with the model's ε held fixed as in 1.), as
   k-diffusion's guided model function wraps the denoiser: the step calls whatever function it is
   handed for the x̂0 it steps with, and turns it into the prediction the scheduler expects, so
   neither the step nor the scheduler (DDPM, DDIM with any eta, ...) learns that guidance exists.
   Two ``Guidance`` forms in a chain compose: the second wraps the first.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import torch

from consensus.core.ensemble import NonDifferentiableScorerError
from consensus.core.feedback.base import Context, Feedback

Schedule = Callable[[float], float]
ModelFn = Callable[[torch.Tensor], torch.Tensor]  # x_t -> x̂0

SCHEDULES: dict[str, Schedule] = {
    # t_frac = t / num_train_timesteps: 1 at pure noise, 0 at the clean end.
    "constant": lambda t_frac: 1.0,
    "linear": lambda t_frac: t_frac,  # fades out: strong while the layout forms, none on the last details
    "cosine": lambda t_frac: math.sin(math.pi / 2 * t_frac),  # like linear but flatter at the noisy end
    "increasing": lambda t_frac: 1.0 - t_frac,  # grows toward the clean end: the layout forms unguided, details guided
}


@runtime_checkable
class DenoisingHooks(Protocol):
    """What a denoiser step exposes to guidance: the predicted clean sample (a leaf with gradient, from
    which the scored images were decoded), the timestep, and ``denoised``, the model function x_t ↦ x̂0
    that the step calls for the clean sample it steps with, which a form may wrap."""

    x0: torch.Tensor
    timestep: int
    num_train_timesteps: int
    denoised: ModelFn


def guided(denoised: ModelFn, step: torch.Tensor) -> ModelFn:
    """The guided model function x_t ↦ denoised(x_t) − λ(t)·ĝ (``step`` = λ(t)·ĝ, taken at this x_t)."""

    def model_fn(x_t: torch.Tensor) -> torch.Tensor:
        return denoised(x_t) - step

    return model_fn


class Guidance(Feedback):
    """x̂0' = x̂0 − λ(t) · ĝ with λ(t) = ``scale`` · ``schedule``(t/T) (see the module docstring).

    Args:
        scale: λ, the step in x̂0 per denoising step (in RMS pixels when ``balance``).
        schedule: a name in ``SCHEDULES`` or a function of t/T giving the multiplier of ``scale``.
        balance: per-scorer gradient-norm balancing (``Ensemble.gradient``).
        clip: the most a sample's direction ĝ may measure, in RMS per pixel (None: no clipping); a
            scorer's spike on one sample then cannot throw that sample far off the manifold in one step.
    """

    needs_gradient = True
    needs_hooks = DenoisingHooks

    def __init__(self, scale: float = 0.1, schedule: str | Schedule = "constant", balance: bool = True,
                 clip: float | None = None):
        if isinstance(schedule, str):
            if schedule not in SCHEDULES:
                raise ValueError(
                    f"unknown guidance schedule {schedule!r}; use one of {sorted(SCHEDULES)} or a function of t/T"
                )
            schedule = SCHEDULES[schedule]
        if not math.isfinite(scale) or scale < 0:
            raise ValueError(f"guidance scale must be a finite number >= 0, got {scale}")
        if clip is not None and not clip > 0:
            raise ValueError(f"guidance clip must be > 0 (or None), got {clip}")
        self.scale, self.schedule, self.balance, self.clip = scale, schedule, balance, clip

    def check(self, ensemble) -> None:
        frozen = [s.name for s in ensemble.scorers if not s.differentiable]
        if frozen:
            raise NonDifferentiableScorerError(
                f"gradient guidance needs differentiable scorers, but {frozen} declare differentiable=False; "
                "drop them from this ensemble, or use them gradient-free (best-of-N selection or particle "
                "resampling with consensus.run_consensus) instead"
            )
        if ensemble.normalization != "none":
            raise ValueError(f"gradient guidance needs an Ensemble with normalization='none', not "
                             f"{ensemble.normalization!r}; balance=True plays that role for gradients")

    def __call__(self, proposals, energies, context: Context) -> dict[str, Any]:
        hooks: DenoisingHooks = proposals.hooks
        direction = context.ensemble.gradient(energies, hooks.x0, self.balance, where=f" at timestep {hooks.timestep}")
        dims = tuple(range(1, direction.ndim))
        if self.clip is not None:
            rms = direction.pow(2).mean(dims, keepdim=True).sqrt()
            direction = direction * (self.clip / rms.clamp_min(1e-12)).clamp(max=1.0)
        step_size = self.scale * self.schedule(hooks.timestep / hooks.num_train_timesteps)
        hooks.denoised = guided(hooks.denoised, step_size * direction)
        return {"timestep": hooks.timestep, "step_size": step_size,
                "direction_rms": direction.pow(2).mean(dims).sqrt().tolist()}
