"""The engine's step for diffusion: one denoising step per iteration over a population of samples.

Each step (the diffusion form of the method: the ensemble guides each denoising step):

1. Predict the clean sample from the denoiser's output at timestep t, with ᾱ = ᾱ_t:
       x̂0 = (x_t − √(1−ᾱ) ε) / √ᾱ            (DDPM, Ho et al. 2020, eq. 4 solved for x0)
2. Decode x̂0 to images in [0, 1] (through the VAE in latent space): the candidates the scorers read,
   with x̂0 a leaf that keeps the gradient, so ``Guidance`` can move it (``DenoisingStepHooks``).
3. After the feedback forms, each surviving sample takes the scheduler's own update with the
   prediction that matches x̂0' = ``hooks.denoised``(x_t), the model function the forms may have
   wrapped (``Guidance``):   ε' = (x_t − √ᾱ x̂0') / √(1−ᾱ),
   converted back to ``sample`` or ``v_prediction`` when the model predicts those.
The step calls the function it is handed and the scheduler steps with its answer: neither learns that
guidance exists, as with k-diffusion's guided model function.

Recurrence (Universal Guidance's self-recurrence, Bansal et al. 2023; TFG's ``recur_steps``): after a
step from x_t to x_{t'} (t' the next, less noisy timestep), draw x_t again from the forward process,

    x_t = √(ᾱ_t / ᾱ_t') · x_t' + √(1 − ᾱ_t / ᾱ_t') · ε,      ε ~ N(0, I),

and take the step again, ``recurrence`` times per timestep: the denoiser pulls a guided sample back
toward the data manifold before the next guidance step moves it.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import torch

from consensus.core.engine import Proposals
from consensus.core.feedback.guidance import ModelFn
from consensus.core.scorer import NoiseLevel
from consensus.generators.diffusion.protocol import Denoiser


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


@dataclass
class DenoisingState:
    """The population: samples ``x`` ``[N, ...]`` in the model's space, about to take step ``step`` for the
    ``repeat``-th time (0: the first; see recurrence)."""

    x: torch.Tensor
    step: int
    repeat: int = 0


@dataclass
class DenoisingStepHooks:
    """A denoising step's hooks, following ``DenoisingHooks`` (``consensus.core.feedback.guidance``): x̂0 (a leaf
    with gradient), the timestep, and the model function x_t ↦ x̂0 the step steps with."""

    x0: torch.Tensor
    timestep: int
    num_train_timesteps: int
    denoised: ModelFn


class DenoisingSteps:
    """Denoise ``num_images`` samples from seeded noise in ``num_inference_steps`` engine iterations.

    ``eta`` is passed to schedulers whose ``step`` takes it (DDIM: 0 deterministic, 1 DDPM-like).
    ``decode_candidates``: decode x̂0 for the scorers at every step (off for the generator alone,
    where nothing reads them and a VAE decode would be wasted); ``gradient``: decode them with autograd on,
    for a form that differentiates the energies (``Guidance``), and only then. ``recurrence``: how many times each
    step is taken again from a re-noised sample (the module docstring); each is one engine iteration.
    """

    def __init__(self, denoiser: Denoiser, num_images: int, num_inference_steps: int, eta: float | None = None,
                 decode_candidates: bool = True, gradient: bool = True, recurrence: int = 0):
        if num_images < 1 or num_inference_steps < 1 or recurrence < 0:
            raise ValueError(f"need num_images >= 1, num_inference_steps >= 1 and recurrence >= 0, got {num_images}, "
                             f"{num_inference_steps}, {recurrence}")
        self.recurrence, self.gradient = recurrence, gradient
        self.denoiser, self.num_images, self.decode_candidates = denoiser, num_images, decode_candidates
        self.scheduler = denoiser.scheduler
        self.scheduler.set_timesteps(num_inference_steps)
        accepts = inspect.signature(self.scheduler.step).parameters
        self.extra: dict[str, Any] = {}
        self.takes_generator = "generator" in accepts
        if eta is not None:
            if "eta" not in accepts:
                raise ValueError(f"{type(self.scheduler).__name__}.step takes no eta; leave eta unset or use DDIMScheduler")
            self.extra["eta"] = eta

    @property
    def num_steps(self) -> int:
        return len(self.scheduler.timesteps)

    @property
    def iterations(self) -> int:
        """Engine iterations of a whole run: every step, and its recurrences."""
        return self.num_steps * (1 + self.recurrence)

    def _alpha_bar_after(self, step: int) -> torch.Tensor:
        """ᾱ at the timestep the sampler reaches after ``step`` (the end of the schedule after the last)."""
        if step + 1 < self.num_steps:
            return self.scheduler.alphas_cumprod[int(self.scheduler.timesteps[step + 1])]
        return getattr(self.scheduler, "final_alpha_cumprod", torch.tensor(1.0))

    def initial(self, generator: torch.Generator) -> DenoisingState:
        noise = torch.randn((self.num_images, *self.denoiser.sample_shape), generator=generator)
        noise = noise.to(self.denoiser.device, self.denoiser.dtype)
        return DenoisingState(noise * self.scheduler.init_noise_sigma, 0)

    def __call__(self, condition: Any, population: DenoisingState | None, generator: torch.Generator) -> Proposals:
        state = population if population is not None else self.initial(generator)
        t = self.scheduler.timesteps[state.step]
        x_t = self.scheduler.scale_model_input(state.x, t)
        with torch.no_grad():
            prediction = self.denoiser.model_fn(x_t, t.expand(len(x_t)))
        timestep = int(t)
        alpha_bar = self.scheduler.alphas_cumprod[timestep].to(x_t.dtype)
        kind = self.denoiser.prediction_type
        eps = prediction_to_eps(prediction, x_t, alpha_bar, kind)
        x0 = eps_to_x0(x_t, eps, alpha_bar).detach().requires_grad_(self.decode_candidates and self.gradient)
        if self.decode_candidates:
            with torch.set_grad_enabled(self.gradient):
                candidates = self.denoiser.decode(x0)
        else:
            candidates = x0

        def unguided(x: torch.Tensor) -> torch.Tensor:  # the model's ε for this x_t, held fixed
            return eps_to_x0(x, eps, alpha_bar)

        hooks = DenoisingStepHooks(x0, timestep, len(self.scheduler.alphas_cumprod), unguided)
        last = state.step + 1 == self.num_steps and state.repeat == self.recurrence
        extra = {**self.extra, **({"generator": generator} if self.takes_generator else {})}

        def advance(survivors: list[int]) -> DenoisingState:
            index = torch.as_tensor(survivors, dtype=torch.long, device=state.x.device)
            model_output = prediction  # unguided: the model's own output, not a round trip through x̂0
            if hooks.denoised is not unguided:
                with torch.no_grad():
                    guided_eps = x0_to_eps(x_t, hooks.denoised(x_t), alpha_bar)
                model_output = eps_to_prediction(guided_eps, x_t, alpha_bar, kind).to(prediction.dtype)
            if len(survivors) != len(state.x) or survivors != list(range(len(state.x))):
                model_output, x = model_output[index], state.x[index]
            else:
                x = state.x
            with torch.no_grad():
                x = self.scheduler.step(model_output, t, x, **extra).prev_sample
                if state.repeat < self.recurrence:  # back to x_t by the forward process, and the step again
                    ratio = (alpha_bar / self._alpha_bar_after(state.step).to(x.dtype)).clamp(max=1.0)
                    noise = torch.randn(x.shape, generator=generator).to(x.device, x.dtype)
                    return DenoisingState(ratio.sqrt() * x + (1 - ratio).sqrt() * noise, state.step, state.repeat + 1)
            return DenoisingState(x, state.step + 1)

        noise_level = NoiseLevel(timestep, float(alpha_bar), eps.detach())
        return Proposals(candidates, complete=[last] * len(x_t), hooks=hooks, advance=advance, noise_level=noise_level)
