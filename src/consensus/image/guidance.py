"""Energy guidance for diffusion: the ensemble's gradient, applied by wrapping the model's prediction.

As in k-diffusion, guidance is a model function around a model function: the scheduler calls
``guided(x_t, t)`` exactly as it would call the denoiser and never learns that guidance exists,
so every diffusers scheduler (DDPM, DDIM with any eta, ...) runs unchanged.

The update (DESIGN.md §1), for a prediction of the noise ε at timestep t with ᾱ = ᾱ_t:

1. Predict the clean sample:          x̂0 = (x_t − √(1−ᾱ) ε) / √ᾱ
2. Score it: decode x̂0 to an image in [0, 1] (through the VAE when the model works in a latent
   space) and compute each scorer's energy E_n(x̂0, c), batched over samples.
3. Differentiate each scorer on its own: g_n = ∇_x̂0 E_n. Classifier guidance (Dhariwal & Nichol
   2021, eq. 14) samples p(x_t) · exp(−s E) by correcting ε̂ = ε + s √(1−ᾱ) ∇_{x_t} E. With E read
   on x̂0 and ε held fixed, ∂x̂0/∂x_t = 1/√ᾱ, so ε̂ = ε + s √(1−ᾱ)/√ᾱ · g, which is the same as
   moving the clean prediction:     x̂0' = x̂0 − s (1−ᾱ)/ᾱ · g.
   The factor (1−ᾱ)/ᾱ spans ten thousand to one over a schedule and, together with the scorers'
   own scales, makes s impossible to choose; so the step is taken in x̂0 space with an explicit
   size λ(t) = scale · schedule(t/T):   x̂0' = x̂0 − λ(t) · ĝ.
4. Balance the scorers: with ``balance=True`` every g_n is rescaled, per sample, to unit RMS per
   pixel before the weighted mean ĝ = Σ w_n g_n/rms(g_n) / Σ w_n, so a scorer in nats and one in
   cosine units push equally (their weights decide), and λ reads as "pixels moved per step"
   whatever the ensemble. Where the scorers agree the pushes add; where they disagree they cancel:
   the consensus. With ``balance=False``, ĝ = Σ w_n g_n, the raw gradient of the weighted sum.
5. Give the scheduler the prediction that matches x̂0':  ε' = (x_t − √ᾱ x̂0') / √(1−ᾱ)
   (converted back to ``sample`` or ``v_prediction`` when the model predicts those).

The ensemble's across-candidate normalisation (z-score, rank, ...) is for selection; in gradient
mode step 4 plays its role, since a gradient must not depend on the other samples in the batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from consensus.ensemble import Ensemble

ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Schedule = Callable[[float], float]

SCHEDULES: dict[str, Schedule] = {
    # t_frac = t / num_train_timesteps: 1 at pure noise, 0 at the clean end.
    "constant": lambda t_frac: 1.0,
    "linear": lambda t_frac: t_frac,  # fades out: strong while the layout forms, none on the last details
    "cosine": lambda t_frac: math.sin(math.pi / 2 * t_frac),  # like linear but flatter at the noisy end
}


class NonDifferentiableScorerError(TypeError):
    """Gradient guidance was asked of a scorer whose energy has no gradient."""


class NonFiniteGradientError(FloatingPointError):
    """A scorer's gradient on the predicted clean image held NaN or inf."""


def straight_through_clamp(x: torch.Tensor, low: float = -1.0, high: float = 1.0) -> torch.Tensor:
    """Clamp values but pass the gradient unchanged, so a saturated pixel can still be pushed back in range."""
    return x + (x.clamp(low, high) - x).detach()


def eps_to_x0(x_t: torch.Tensor, eps: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """x̂0 = (x_t − √(1−ᾱ) ε) / √ᾱ  (DDPM, Ho et al. 2020, eq. 4 solved for x0)."""
    return (x_t - (1 - alpha_bar).sqrt() * eps) / alpha_bar.sqrt()


def x0_to_eps(x_t: torch.Tensor, x0: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """ε = (x_t − √ᾱ x̂0) / √(1−ᾱ): the noise that explains x_t given a clean sample."""
    return (x_t - alpha_bar.sqrt() * x0) / (1 - alpha_bar).sqrt()


def prediction_to_eps(prediction: torch.Tensor, x_t: torch.Tensor, alpha_bar: torch.Tensor, kind: str) -> torch.Tensor:
    """Convert a model output of type ``epsilon``, ``sample`` or ``v_prediction`` to ε (v = √ᾱ ε − √(1−ᾱ) x0)."""
    if kind == "epsilon":
        return prediction
    if kind == "sample":
        return x0_to_eps(x_t, prediction, alpha_bar)
    if kind == "v_prediction":
        return alpha_bar.sqrt() * prediction + (1 - alpha_bar).sqrt() * x_t
    raise ValueError(f"unknown prediction type {kind!r}; use epsilon, sample or v_prediction")


def eps_to_prediction(eps: torch.Tensor, x_t: torch.Tensor, alpha_bar: torch.Tensor, kind: str) -> torch.Tensor:
    """Inverse of :func:`prediction_to_eps`."""
    if kind == "epsilon":
        return eps
    x0 = eps_to_x0(x_t, eps, alpha_bar)
    if kind == "sample":
        return x0
    if kind == "v_prediction":
        return alpha_bar.sqrt() * eps - (1 - alpha_bar).sqrt() * x0
    raise ValueError(f"unknown prediction type {kind!r}; use epsilon, sample or v_prediction")


def balanced_direction(gradients: list[torch.Tensor], weights: list[float], balance: bool) -> torch.Tensor:
    """ĝ = Σ w_n g_n / rms(g_n) / Σ w_n per sample (``balance``), else Σ w_n g_n; step 4 of the module docstring."""
    if not balance:
        return sum(w * g for w, g in zip(weights, gradients))
    total = sum(weights)
    if total <= 0:
        raise ValueError(f"balanced guidance needs a positive sum of ensemble weights, got {weights}")
    dims = tuple(range(1, gradients[0].ndim))
    # A sample whose gradient is exactly zero (a saturated scorer) contributes nothing, not NaN.
    unit = [g / g.pow(2).mean(dims, keepdim=True).sqrt().clamp_min(1e-12) for g in gradients]
    return sum(w * u for w, u in zip(weights, unit)) / total


class EnergyGuidance:
    """Wrap a diffusion model function so that its prediction follows the ensemble's energy.

    Args:
        model_fn: ``model_fn(x_t, t) -> prediction``, the unguided denoiser.
        alphas_cumprod: the scheduler's ᾱ for every training timestep.
        ensemble: the consensus ensemble; every scorer must be differentiable.
        condition: what the scorers are asked about (a class name, a prompt, or one per sample).
        decode: maps the clean prediction to images in [0, 1] for the scorers, with gradient
            (``(x + 1) / 2`` in pixel space; the VAE decoder in latent space).
        scale: λ, the step in x̂0 per denoising step (in RMS pixels when ``balance``).
        schedule: a name in ``SCHEDULES`` or a function of t/T giving the multiplier of ``scale``.
        balance: per-scorer gradient-norm balancing (see the module docstring).
        prediction_type: what the model predicts: ``epsilon``, ``sample`` or ``v_prediction``.
        callback: called after every guided model call with a dict: ``timestep``, ``x0``
            (images in [0, 1]), ``energies`` (per scorer, per sample), ``total``, ``grad_rms``
            (per scorer, per sample), ``step_size`` (λ(t)) and ``scorer_seconds``.
    """

    def __init__(
        self,
        model_fn: ModelFn,
        alphas_cumprod: torch.Tensor,
        ensemble: Ensemble,
        condition: Any,
        decode: Callable[[torch.Tensor], torch.Tensor],
        scale: float = 0.1,
        schedule: str | Schedule = "constant",
        balance: bool = True,
        prediction_type: str = "epsilon",
        callback: Callable[[dict[str, Any]], None] | None = None,
    ):
        frozen = [s.name for s in ensemble.scorers if not s.differentiable]
        if frozen:
            raise NonDifferentiableScorerError(
                f"gradient guidance needs differentiable scorers, but {frozen} declare differentiable=False; "
                "drop them from this ensemble, or use them in a gradient-free loop (best-of-N selection with "
                "consensus.run_consensus) instead"
            )
        if isinstance(schedule, str):
            if schedule not in SCHEDULES:
                raise ValueError(
                    f"unknown guidance schedule {schedule!r}; use one of {sorted(SCHEDULES)} or a function of t/T"
                )
            schedule = SCHEDULES[schedule]
        if not math.isfinite(scale) or scale < 0:
            raise ValueError(f"guidance scale must be a finite number >= 0, got {scale}")
        prediction_to_eps(torch.zeros(1), torch.zeros(1), torch.ones(1), prediction_type)  # validates the name
        self.model_fn, self.ensemble, self.condition, self.decode = model_fn, ensemble, condition, decode
        self.alphas_cumprod = alphas_cumprod
        self.scale, self.schedule, self.balance = scale, schedule, balance
        self.prediction_type, self.callback = prediction_type, callback

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            prediction = self.model_fn(x_t, t)
        timestep = int(t.flatten()[0]) if isinstance(t, torch.Tensor) else int(t)
        alpha_bar = self.alphas_cumprod[timestep].to(x_t.dtype)
        eps = prediction_to_eps(prediction, x_t, alpha_bar, self.prediction_type)
        x0 = eps_to_x0(x_t, eps, alpha_bar).detach().requires_grad_(True)  # step 1
        with torch.enable_grad():
            images = self.decode(x0)
            result = self.ensemble(images, self.condition)  # step 2
            gradients = []
            for i, (name, energy) in enumerate(result.per_scorer.items()):  # step 3
                (g,) = torch.autograd.grad(energy.sum(), x0, retain_graph=i < len(result.per_scorer) - 1)
                if not torch.isfinite(g).all():
                    raise NonFiniteGradientError(
                        f"scorer {name} gave a NaN/inf gradient at timestep {timestep}; lower the guidance scale, "
                        "or check that the scorer is finite for images in [0, 1] (e.g. a log of a zero probability)"
                    )
                gradients.append(g)
        direction = balanced_direction(gradients, self.ensemble.weights, self.balance)  # step 4
        step_size = self.scale * self.schedule(timestep / len(self.alphas_cumprod))
        x0_guided = x0.detach() - step_size * direction
        guided_eps = x0_to_eps(x_t, x0_guided, alpha_bar)  # step 5
        if self.callback is not None:
            dims = tuple(range(1, x0.ndim))
            self.callback({
                "timestep": timestep,
                "x0": images.detach(),
                "energies": {k: e.detach() for k, e in result.per_scorer.items()},
                "total": result.total.detach(),
                "grad_rms": {k: g.pow(2).mean(dims).sqrt() for k, g in zip(result.per_scorer, gradients)},
                "step_size": step_size,
                "scorer_seconds": result.seconds,
            })  # fmt: skip
        return eps_to_prediction(guided_eps, x_t, alpha_bar, self.prediction_type).to(prediction.dtype)
