"""Segmentation models for the per-view scorers.

Any model fits the scorers if it follows the ``Segmenter`` protocol: RGB images in, one class id
per pixel out, with ``class_names[i]`` naming class i (0 is background). The default is a small
U-Net that ``scripts/train_robot_segmenter.py`` trains on rendered views (the offline stand-in for
the paper's pre-trained segmenter); its weights and card live in ``consensus/zoo/weights/robot-segmenter``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn

from consensus.zoo import WEIGHTS_DIR

DEFAULT_WEIGHTS = WEIGHTS_DIR / "robot-segmenter" / "segmenter.pt"


class Segmenter(Protocol):
    """``images [B, H, W, 3] uint8 -> labels [B, H, W] int``; ``class_names[label]`` names a pixel."""

    class_names: Sequence[str]

    def __call__(self, images: np.ndarray) -> np.ndarray: ...


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(), nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU())


class TinyUNet(nn.Module):
    """A three-level U-Net: enough for coloured objects at 64 px, small enough to train on a CPU."""

    def __init__(self, n_classes: int, width: int = 16):
        super().__init__()
        w = width
        self.enc1, self.enc2, self.enc3 = _block(3, w), _block(w, 2 * w), _block(2 * w, 4 * w)
        self.dec2, self.dec1 = _block(6 * w, 2 * w), _block(3 * w, w)
        self.head = nn.Conv2d(w, n_classes, 1)
        self.pool, self.up = nn.MaxPool2d(2), nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        e3 = self.enc3(self.pool(e2))
        d2 = self.dec2(torch.cat([self.up(e3), e2], 1))
        d1 = self.dec1(torch.cat([self.up(d2), e1], 1))
        return self.head(d1)


def to_input(images: np.ndarray) -> torch.Tensor:
    """``[B, H, W, 3] uint8`` to the network's ``[B, 3, H, W]`` floats in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0


class TorchSegmenter:
    """Wraps a torch module that maps ``[B, 3, H, W]`` images in [0, 1] to class logits ``[B, C, H, W]``."""

    def __init__(self, model: nn.Module, class_names: Sequence[str]):
        self.model = model.eval()
        self.class_names = tuple(class_names)

    @torch.no_grad()
    def __call__(self, images: np.ndarray) -> np.ndarray:
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"expected images of shape [B, H, W, 3], got {images.shape}")
        return self.model(to_input(images)).argmax(1).numpy()


def load_segmenter(path: str | Path = DEFAULT_WEIGHTS) -> TorchSegmenter:
    """Load weights saved by scripts/train_robot_segmenter.py."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no segmenter weights at {path}; train them with scripts/train_robot_segmenter.py")
    saved = torch.load(path, map_location="cpu", weights_only=True)
    model = TinyUNet(len(saved["class_names"]), saved["width"])
    model.load_state_dict(saved["state_dict"])
    return TorchSegmenter(model, saved["class_names"])
