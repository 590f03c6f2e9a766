"""The small Fashion-MNIST models the project trains itself (the embedded default of the image
experiment).

- the generator: an unconditional diffusers ``UNet2DModel`` with its DDPM scheduler; it
  knows nothing of classes;
- three guidance scorers of different architectures and data (``cnn``, ``mlp``, ``resnet``);
- the same three as noise-aware classifiers of the generator's noisy samples (``noise-aware-cnn``, ...),
  which read the noise level as classifier guidance does;
- two evaluation-only models, trained on a third of the data no scorer saw: a held-out
  classifier (``eval-classifier``) and a feature network for FID/KID (``eval-features``).

Every classifier reads images in [0, 1], ``[N, 1, 28, 28]``, and normalises inside, so it
plugs into :class:`~consensus.scorers.image.classifier.ClassifierScorer` without extra settings.
Weights live in ``consensus/zoo/weights/fashion-<name>/`` and are made by ``scripts/train_fashion_*.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from consensus.zoo import WEIGHTS_DIR

SCORER_NAMES = ("cnn", "mlp", "resnet")
NOISE_AWARE_NAMES = tuple(f"noise-aware-{name}" for name in SCORER_NAMES)
EVAL_NAMES = ("eval-classifier", "eval-features")
_MEAN, _STD = 0.2860, 0.3530  # Fashion-MNIST train pixel statistics


class _Normalize(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - _MEAN) / _STD


class SmallCNN(nn.Module):
    """Two conv stages and a dense head: the classic MNIST-style CNN."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1):
        super().__init__()
        self.net = nn.Sequential(
            _Normalize(),
            nn.Conv2d(in_channels, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, num_classes),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class MLP(nn.Module):
    """No convolutions at all: sees the image as 784 numbers, so it errs differently."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1):
        super().__init__()
        self.net = nn.Sequential(
            _Normalize(), nn.Flatten(),
            nn.Linear(784 * in_channels, 256), nn.GELU(), nn.Linear(256, 256), nn.GELU(), nn.Linear(256, num_classes),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _ResidualBlock(nn.Module):
    def __init__(self, channels_in: int, channels_out: int, stride: int):
        super().__init__()
        # GroupNorm, not BatchNorm: the scorer sees small guided batches whose statistics drift.
        self.body = nn.Sequential(
            nn.Conv2d(channels_in, channels_out, 3, stride, 1), nn.GroupNorm(8, channels_out), nn.SiLU(),
            nn.Conv2d(channels_out, channels_out, 3, 1, 1), nn.GroupNorm(8, channels_out),
        )  # fmt: skip
        self.skip = (
            nn.Conv2d(channels_in, channels_out, 1, stride)
            if stride != 1 or channels_in != channels_out
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.silu(self.body(x) + self.skip(x))


class TinyResNet(nn.Module):
    """Residual blocks with strided downsampling and global average pooling."""

    def __init__(self, num_classes: int = 10, width: int = 32, in_channels: int = 1):
        super().__init__()
        self.net = nn.Sequential(
            _Normalize(),
            nn.Conv2d(in_channels, width, 3, padding=1), nn.SiLU(),
            _ResidualBlock(width, width, 1), _ResidualBlock(width, 2 * width, 2), _ResidualBlock(2 * width, 2 * width, 2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, num_classes),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class VGGNet(nn.Module):
    """A VGG-style network with an embedding layer; ``features`` returns the embedding.

    Used for evaluation only: as the held-out classifier and, with another seed and
    embedding size, as the feature network of FID/KID (the role Inception plays for ImageNet).
    """

    def __init__(self, num_classes: int = 10, embedding: int = 128):
        super().__init__()
        self.body = nn.Sequential(
            _Normalize(),
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Dropout(0.3), nn.Linear(64 * 7 * 7, embedding), nn.ReLU(),
        )  # fmt: skip
        self.head = nn.Linear(embedding, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class NoiseAwareClassifier(nn.Module):
    """A classifier of noisy samples x_t at any noise level, for classifier guidance (Dhariwal & Nichol 2021).

    ``forward(x_t, noise_std)``: x_t ``[N, 1, 28, 28]`` is a sample of the diffusion's forward process in its
    own space, x_t = √ᾱ x0 + √(1−ᾱ) ε with x0 in [−1, 1], and ``noise_std`` ``[N]`` is its √(1−ᾱ) (0: clean).
    The noise level reaches the body as a constant second input plane, which every architecture here
    can read (a convolution sees it as a bias map, the MLP as 784 more inputs).
    """

    def __init__(self, body: str = "SmallCNN", num_classes: int = 10, **body_kwargs: object):
        super().__init__()
        self.body = ARCHITECTURES[body](num_classes=num_classes, in_channels=2, **body_kwargs)

    def forward(self, x_t: torch.Tensor, noise_std: torch.Tensor) -> torch.Tensor:
        plane = noise_std.to(x_t).view(-1, 1, 1, 1).expand(-1, 1, *x_t.shape[-2:])
        return self.body(torch.cat([x_t, plane], dim=1))


ARCHITECTURES = {"SmallCNN": SmallCNN, "MLP": MLP, "TinyResNet": TinyResNet, "VGGNet": VGGNet,
                 "NoiseAwareClassifier": NoiseAwareClassifier}


def save_classifier(model: nn.Module, directory: str | Path, **config: object) -> None:
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps({"architecture": type(model).__name__, **config}, indent=2))
    # float16 on disk keeps the repository small; loading casts back to the float32 parameters.
    state = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in model.state_dict().items()}
    save_file(state, directory / "model.safetensors")


def _weights(name: str) -> Path:
    directory = WEIGHTS_DIR / f"fashion-{name}"
    if not (directory / "config.json").exists():
        known = ", ".join(SCORER_NAMES + NOISE_AWARE_NAMES + EVAL_NAMES + ("diffusion",))
        raise FileNotFoundError(
            f"no committed Fashion-MNIST model {name!r} at {directory}; known models: {known}. "
            "Train it with scripts/train_fashion_classifiers.py or scripts/train_fashion_diffusion.py"
        )
    return directory


def load_fashion_classifier(name: str) -> nn.Module:
    """Load a committed classifier (``cnn``, ``mlp``, ``resnet``, ``noise-aware-*``, ``eval-*``), frozen, in eval mode."""
    from safetensors.torch import load_file

    directory = _weights(name)
    config = json.loads((directory / "config.json").read_text())
    model = ARCHITECTURES[config["architecture"]](**config.get("kwargs", {}))
    model.load_state_dict(load_file(directory / "model.safetensors"))
    return model.eval().requires_grad_(False)


def load_fashion_generator():
    """Load the committed unconditional diffusion model: ``(UNet2DModel, DDPMScheduler)``."""
    from diffusers import DDPMScheduler, UNet2DModel

    directory = _weights("diffusion")
    unet = UNet2DModel.from_pretrained(directory, torch_dtype=torch.float32).eval().requires_grad_(False)
    return unet, DDPMScheduler.from_pretrained(directory)
