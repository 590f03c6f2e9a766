"""The diffusion generator: any diffusers UNet and scheduler, optionally behind a VAE and a text encoder.

The engine owns the loop (one denoising step per iteration, ``DenoisingSteps``) and the scheduler
owns one update, as in diffusers; guidance is a feedback form (``Guidance``) that moves the predicted
clean sample, so the loop is the same with or without it.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from consensus.core.budget import Budget
from consensus.core.engine import ConsensusResult, run_consensus
from consensus.core.ensemble import Ensemble
from consensus.core.feedback import Feedback, Guidance
from consensus.core.feedback.guidance import Schedule
from consensus.core.trace import TraceWriter
from consensus.generators.diffusion.steps import DenoisingSteps, straight_through_clamp


@dataclass
class GenerationResult:
    """Images in [0, 1] ``[N, C, H, W]``, per denoising step the seconds it took, and the engine's result."""

    images: torch.Tensor
    step_seconds: list[float] = field(default_factory=list)
    run: ConsensusResult | None = None


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
        feedback: Sequence[Feedback] | None = None,
        recurrence: int = 0,
        eta: float | None = None,
        seed: int = 0,
        trace: TraceWriter | None = None,
        callback: Callable[[dict[str, Any]], None] | None = None,
        item: Any = None,
    ) -> GenerationResult:
        """Draw ``num_images`` images in [0, 1] through the engine, one denoising step per iteration.

        With an ensemble the feedback is ``Guidance(guidance_scale, schedule, balance)`` unless
        ``feedback`` names other forms (e.g. ``[Guidance(...), Resample(k)]`` for guided particles).
        ``recurrence``: each step taken again that many times from a re-noised sample (``DenoisingSteps``).
        ``callback`` and ``trace`` get the engine's per-iteration record (``consensus.core.trace``).
        """
        if feedback is None:
            feedback = [Guidance(guidance_scale, schedule, balance)] if ensemble is not None else []
        steps = DenoisingSteps(self, num_images, num_inference_steps, eta, decode_candidates=ensemble is not None,
                               gradient=any(form.needs_gradient for form in feedback), recurrence=recurrence)
        step_seconds: list[float] = []
        clock = [time.perf_counter()]

        def on_step(info: dict[str, Any]) -> None:
            now = time.perf_counter()
            step_seconds.append(now - clock[0])
            clock[0] = now
            if callback is not None:
                callback(info)

        run = run_consensus(steps, ensemble, condition, feedback=feedback, budget=Budget(iterations=steps.iterations),
                            seed=seed, callback=on_step, trace=trace, item=item)
        with torch.no_grad():
            images = self.decode(run.population.x)
        return GenerationResult(images=images.float().clamp(0, 1), step_seconds=step_seconds, run=run)

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype
