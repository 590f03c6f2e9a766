"""Validation of image batches: every image scorer reads float ``[N, C, H, W]`` in [0, 1]."""

from __future__ import annotations

import torch

# Resampling and float round-off may overshoot [0, 1] by a hair; anything beyond is a wrong range.
_RANGE_SLACK = 1e-3


def check_images(images: object, channels: int | None = None, who: str = "scorer") -> torch.Tensor:
    """Return ``images`` unchanged if it is a float batch ``[N, C, H, W]`` in [0, 1]; raise a clear error otherwise."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{who} expects a float tensor [N, C, H, W] in [0, 1], got {type(images).__name__}")
    if images.ndim != 4:
        raise ValueError(
            f"{who} expects images shaped [N, C, H, W], got shape {tuple(images.shape)}; "
            "add a batch dimension with images.unsqueeze(0) or a channel dimension with images.unsqueeze(1)"
        )
    if not images.is_floating_point():
        raise TypeError(
            f"{who} expects float images in [0, 1], got dtype {images.dtype}; convert with images.float() / 255"
        )
    if channels is not None and images.shape[1] not in (channels, 1):
        raise ValueError(
            f"{who} expects {channels} channels (or 1, repeated), got {images.shape[1]} in shape {tuple(images.shape)}"
        )
    if images.numel():
        low, high = images.detach().amin().item(), images.detach().amax().item()
        if not (low >= -_RANGE_SLACK and high <= 1 + _RANGE_SLACK):
            raise ValueError(
                f"{who} expects pixel values in [0, 1], got range [{low:.3g}, {high:.3g}]; "
                "map [-1, 1] images with (x + 1) / 2 and 0..255 images with x / 255"
            )
    return images
