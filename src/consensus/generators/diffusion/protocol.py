"""The denoiser protocol: what the engine's denoising steps need of a diffusion model.

``DiffusionGenerator`` implements it over any diffusers UNet and scheduler (with a VAE for latent
models); another sampler stack implements these members and gets guidance, particle resampling
and the trace unchanged.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch


@runtime_checkable
class Denoiser(Protocol):
    """scheduler: a diffusers-style scheduler (``set_timesteps``, ``timesteps``, ``scale_model_input``,
    ``step``, ``alphas_cumprod``, ``init_noise_sigma``); prediction_type: ``epsilon``, ``sample`` or
    ``v_prediction``; sample_shape: one sample's ``(C, H, W)`` in the model's space; device and dtype:
    where the samples live."""

    scheduler: Any
    prediction_type: str
    sample_shape: tuple[int, int, int]
    device: torch.device
    dtype: torch.dtype

    def model_fn(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The unguided prediction for ``x`` at timesteps ``t``."""

    def decode(self, x0: torch.Tensor) -> torch.Tensor:
        """Clean model-space samples to images in [0, 1], keeping the gradient."""
