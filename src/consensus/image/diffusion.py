"""The diffusion generator: any diffusers UNet and scheduler, optionally behind a VAE and a text encoder.

The sampler owns the loop and the scheduler owns one update, as in diffusers; guidance, when
asked for, is an :class:`~consensus.image.guidance.EnergyGuidance` around the model function,
so the loop below is the same with or without it.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from consensus.ensemble import Ensemble
from consensus.image.guidance import EnergyGuidance, Schedule, straight_through_clamp
from consensus.trace import TraceWriter


def sample_loop(
    model_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    scheduler: Any,
    noise: torch.Tensor,
    num_inference_steps: int,
    generator: torch.Generator | None = None,
    eta: float | None = None,
    callback: Callable[[dict[str, Any]], None] | None = None,
) -> torch.Tensor:
    """Run a diffusers scheduler from ``noise`` to a clean sample (in the model's space).

    ``eta`` is passed to schedulers whose ``step`` takes it (DDIM: 0 deterministic, 1 DDPM-like).
    ``callback`` gets ``{"step", "timestep", "x", "seconds"}`` after every update.
    """
    scheduler.set_timesteps(num_inference_steps)
    x = noise * scheduler.init_noise_sigma
    accepts = inspect.signature(scheduler.step).parameters
    extra: dict[str, Any] = {"generator": generator} if "generator" in accepts else {}
    if eta is not None:
        if "eta" not in accepts:
            raise ValueError(f"{type(scheduler).__name__}.step takes no eta; leave eta unset or use DDIMScheduler")
        extra["eta"] = eta
    for step, t in enumerate(scheduler.timesteps):
        start = time.perf_counter()
        model_input = scheduler.scale_model_input(x, t)
        prediction = model_fn(model_input, t.expand(len(x)))
        x = scheduler.step(prediction, t, x, **extra).prev_sample
        if callback is not None:
            callback({"step": step, "timestep": int(t), "x": x, "seconds": time.perf_counter() - start})
    return x


@dataclass
class GenerationResult:
    """Images in [0, 1] ``[N, C, H, W]`` and, per denoising step, the seconds it took."""

    images: torch.Tensor
    step_seconds: list[float] = field(default_factory=list)


class DiffusionGenerator:
    """A diffusion model that proposes images, with optional energy guidance by an ensemble.

    Args:
        unet: a diffusers ``UNet2DModel`` or ``UNet2DConditionModel``.
        scheduler: any diffusers scheduler exposing ``alphas_cumprod`` (DDPM, DDIM, ...).
        vae: an ``AutoencoderKL`` when the UNet works in its latent space (Stable Diffusion);
            energies are then read on the decoded image, and the gradient flows back through it.
        encoder_hidden_states: text embeddings ``[1 or N, L, D]`` for a conditional UNet.
        uncond_hidden_states: the empty prompt's embeddings, for classifier-free guidance.
        cfg_scale: classifier-free guidance weight (used when ``uncond_hidden_states`` is given).
    """

    def __init__(
        self,
        unet: Any,
        scheduler: Any,
        vae: Any = None,
        encoder_hidden_states: torch.Tensor | None = None,
        uncond_hidden_states: torch.Tensor | None = None,
        cfg_scale: float = 7.5,
    ):
        if not hasattr(scheduler, "alphas_cumprod"):
            raise TypeError(
                f"{type(scheduler).__name__} has no alphas_cumprod; use a DDPM-family scheduler (DDPM, DDIM, PNDM, ...)"
            )
        conditional = "encoder_hidden_states" in inspect.signature(unet.forward).parameters
        if conditional and encoder_hidden_states is None:
            raise ValueError(
                f"{type(unet).__name__} is conditional: pass encoder_hidden_states, or use from_pipeline(pipe, prompt)"
            )
        self.unet, self.scheduler, self.vae = unet, scheduler, vae
        self.encoder_hidden_states, self.uncond_hidden_states, self.cfg_scale = (
            encoder_hidden_states, uncond_hidden_states, cfg_scale,
        )  # fmt: skip
        self.prediction_type = scheduler.config.get("prediction_type", "epsilon")

    @classmethod
    def from_pipeline(
        cls, pipe: Any, prompt: str, negative_prompt: str = "", cfg_scale: float = 7.5
    ) -> DiffusionGenerator:
        """Build from a loaded text-to-image pipeline of the Stable Diffusion family (unet, vae, scheduler, encode_prompt)."""
        device = next(pipe.unet.parameters()).device
        cond, uncond = pipe.encode_prompt(prompt, device, 1, cfg_scale > 1, negative_prompt=negative_prompt)
        return cls(pipe.unet, pipe.scheduler, vae=pipe.vae, encoder_hidden_states=cond,
                   uncond_hidden_states=uncond if cfg_scale > 1 else None, cfg_scale=cfg_scale)  # fmt: skip

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        size = self.unet.config.sample_size
        h, w = (size, size) if isinstance(size, int) else tuple(size)
        return (self.unet.config.in_channels, h, w)

    def model_fn(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The unguided prediction (with classifier-free guidance for a text pipeline)."""
        if self.encoder_hidden_states is None:
            return self.unet(x, t).sample
        cond = self.encoder_hidden_states.expand(len(x), -1, -1)
        if self.uncond_hidden_states is None:
            return self.unet(x, t, encoder_hidden_states=cond).sample
        uncond = self.uncond_hidden_states.expand(len(x), -1, -1)
        both = self.unet(torch.cat([x, x]), torch.cat([t, t]), encoder_hidden_states=torch.cat([uncond, cond])).sample
        e_uncond, e_cond = both.chunk(2)
        return e_uncond + self.cfg_scale * (e_cond - e_uncond)

    def decode(self, x0: torch.Tensor) -> torch.Tensor:
        """Clean model-space sample to images in [0, 1], keeping the gradient (through the VAE if any)."""
        if self.vae is not None:
            x0 = self.vae.decode(x0 / self.vae.config.scaling_factor).sample
        return (straight_through_clamp(x0) + 1) / 2

    def generate(
        self,
        num_images: int,
        ensemble: Ensemble | None = None,
        condition: Any = None,
        *,
        num_inference_steps: int = 50,
        guidance_scale: float = 0.1,
        schedule: str | Schedule = "constant",
        balance: bool = True,
        eta: float | None = None,
        seed: int = 0,
        trace: TraceWriter | None = None,
        callback: Callable[[dict[str, Any]], None] | None = None,
    ) -> GenerationResult:
        """Draw ``num_images`` images in [0, 1], guided by ``ensemble`` toward ``condition`` when given.

        ``callback`` gets the sampler's per-step dict, extended (when guided) with the guidance
        fields of :class:`EnergyGuidance` (``energies``, ``grad_rms``, ``step_size``, ``x0``, ...).
        ``trace`` receives one line per step: timestep, every scorer's energy per sample, the
        total, the gradient RMS per scorer and the step's seconds.
        """
        generator = torch.Generator().manual_seed(seed)
        noise = torch.randn((num_images, *self.sample_shape), generator=generator).to(self._device, self._dtype)
        model_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = self.model_fn
        guidance_record: dict[str, Any] = {}
        if ensemble is not None:
            model_fn = EnergyGuidance(
                self.model_fn, self.scheduler.alphas_cumprod, ensemble, condition, self.decode,
                scale=guidance_scale, schedule=schedule, balance=balance,
                prediction_type=self.prediction_type, callback=guidance_record.update,
            )  # fmt: skip
        step_seconds: list[float] = []

        def on_step(info: dict[str, Any]) -> None:
            step_seconds.append(info["seconds"])
            info = {**info, **guidance_record}
            if trace is not None:
                trace.write({k: v for k, v in info.items() if k not in ("x", "x0")})
            if callback is not None:
                callback(info)

        with torch.no_grad():
            x = sample_loop(model_fn, self.scheduler, noise, num_inference_steps, generator, eta, on_step)
            images = self.decode(x)
        return GenerationResult(images=images.float().clamp(0, 1), step_seconds=step_seconds)

    @property
    def _device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def _dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype
