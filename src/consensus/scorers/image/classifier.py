"""Scorers over torch image classifiers: energy = −log p(class | image), or −log p(class | x_t, t) of a noisy sample.

The scorer owns the preprocessing, written with differentiable ops only (resize of the shorter
side with antialiasing, centre crop, per-channel normalisation), so the gradient reaches the
pixels and diffusion guidance can use it.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from consensus.core.scorer import NoiseLevel, Scorer
from consensus.scorers.image.checks import check_images


def resize_and_crop(images: torch.Tensor, size: int, crop: bool = True) -> torch.Tensor:
    """Resize (differentiably) so the shorter side is ``size`` and centre-crop to a square, or resize to ``size × size``."""
    h, w = images.shape[-2:]
    if not crop:
        target = (size, size)
    else:
        target = (size, max(size, round(w * size / h))) if h <= w else (max(size, round(h * size / w)), size)
    if (h, w) != target:
        images = nn.functional.interpolate(images, size=target, mode="bilinear", align_corners=False, antialias=True)
    top, left = (images.shape[-2] - size) // 2, (images.shape[-1] - size) // 2
    return images[..., top : top + size, left : left + size]


class ClassIndex:
    """Class names to indices, case-insensitive, with optional aliases and a helpful error."""

    def __init__(self, class_names: Sequence[str], aliases: Mapping[str, int] | None = None):
        self.class_names = list(class_names)
        self._lookup: dict[str, set[int]] = {}
        for i, name in enumerate(self.class_names):
            self._lookup.setdefault(name.lower(), set()).add(i)
        for name, i in (aliases or {}).items():
            self._lookup.setdefault(name.lower(), set()).add(i)

    def __call__(self, condition: Any, n: int) -> torch.Tensor:
        """One class index per candidate: ``condition`` is a name or index, or a sequence of ``n`` of them."""
        items = [condition] * n if isinstance(condition, (str, int)) else list(condition)
        if len(items) != n:
            raise ValueError(f"got {len(items)} class conditions for {n} images; give one class, or one per image")
        return torch.tensor([self.index(item) for item in items], dtype=torch.long)

    def index(self, item: str | int) -> int:
        if isinstance(item, int) and not isinstance(item, bool):
            if not 0 <= item < len(self.class_names):
                raise ValueError(
                    f"class index {item} is out of range; this classifier has {len(self.class_names)} classes"
                )
            return item
        if not isinstance(item, str):
            raise TypeError(f"a class condition is a name or an index, got {type(item).__name__}")
        found = self._lookup.get(item.lower())
        if not found:
            close = difflib.get_close_matches(item.lower(), list(self._lookup), n=3)
            if close:
                hint = f"did you mean {', '.join(repr(c) for c in close)}?"
            elif len(self.class_names) <= 20:  # a choice set small enough to list
                hint = f"use one of: {', '.join(self.class_names)}"
            else:
                hint = f"see the scorer's class_names ({len(self.class_names)} classes)"
            raise ValueError(f"unknown class name {item!r}; {hint}")
        if len(found) > 1:
            raise ValueError(
                f"class name {item!r} is ambiguous (classes {sorted(found)}); pass the class index instead"
            )
        return next(iter(found))


class _Classifier(Scorer):
    """What both classifier scorers share: a frozen model, its class names (read from the condition) and a name."""

    def __init__(self, model: nn.Module, class_names: Sequence[str], aliases: Mapping[str, int] | None,
                 name: str | None):
        self.model = model.eval().requires_grad_(False)
        self.classes = ClassIndex(class_names, aliases)
        self._name = name

    @property
    def name(self) -> str:
        return self._name or super().name

    @property
    def class_names(self) -> list[str]:
        return self.classes.class_names


class ClassifierScorer(_Classifier):
    """Energy −log p(class | image) from a torch classifier returning logits.

    Args:
        model: ``model(images) -> logits [N, num_classes]``; frozen and put in eval mode here.
        class_names: one name per logit, used to read the condition.
        image_size: the side the classifier expects; ``None`` keeps the input size.
        mean, std: per-channel normalisation applied after resizing; ``None`` skips it.
        channels: the channels the classifier reads; single-channel images are repeated to it.
        crop: resize the shorter side and centre-crop (``True``) or squash to a square.
        aliases: extra names for classes (e.g. ImageNet synonyms).
        name: a unique scorer name (it keys the trace); defaults to the class name.

    The condition is a class name or index, or one per image.
    """

    modality = "image"
    differentiable = True

    def __init__(
        self,
        model: nn.Module,
        class_names: Sequence[str],
        *,
        image_size: int | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        channels: int = 1,
        crop: bool = True,
        aliases: Mapping[str, int] | None = None,
        name: str | None = None,
    ):
        super().__init__(model, class_names, aliases, name)
        self.image_size, self.channels, self.crop = image_size, channels, crop
        self.mean = None if mean is None else torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = None if std is None else torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        check_images(images, self.channels, who=self.name)
        x = images.expand(-1, self.channels, -1, -1) if images.shape[1] == 1 else images
        if self.image_size is not None:
            x = resize_and_crop(x, self.image_size, self.crop)
        if self.mean is not None:
            x = (x - self.mean.to(x)) / self.std.to(x)
        return x

    def log_probs(self, images: torch.Tensor) -> torch.Tensor:
        """log p(class | image) for every class, ``[N, num_classes]``."""
        return torch.log_softmax(self.model(self.preprocess(images)).float(), dim=-1)

    def energy(self, candidates: torch.Tensor, condition: Any) -> torch.Tensor:
        target = self.classes(condition, len(candidates)).to(candidates.device)
        return -self.log_probs(candidates).gather(1, target[:, None]).squeeze(1)


class NoiseAwareClassifierScorer(_Classifier):
    """Energy −log p(class | x_t, t) from a classifier of a diffusion model's noisy samples (classifier guidance).

    Classifier guidance (Dhariwal & Nichol 2021) reads the noisy sample x_t, which a clean-image classifier
    has never seen. Here the candidate is the step's decoded x̂0 and the ``NoiseLevel`` carries ᾱ and the
    denoiser's ε̂, so the scorer rebuilds

        x_t = √ᾱ (2 x̂0 − 1) + √(1−ᾱ) ε̂          (pixel space; the candidate is in [0, 1])

    exactly, and its gradient reaches the candidate as −2 √ᾱ ∇_{x_t} log p(c | x_t) (the 2 from the map of [0, 1]
    to [−1, 1]): classifier guidance, in the x̂0 space where ``Guidance`` steps. With no noise level (finished images) it reads them as clean (ᾱ = 1).

    Args:
        model: ``model(x_t, noise_std) -> logits [N, num_classes]`` with x_t ``[N, C, H, W]`` in the diffusion
            model's space and noise_std ``[N]`` = √(1−ᾱ) (``consensus.zoo.fashion.NoiseAwareClassifier``).
        class_names, aliases, name: as for ``ClassifierScorer``.

    It needs a pixel-space diffusion model (the noise estimate shaped as the images), not a latent one.
    """

    modality = "image"
    differentiable = True
    reads_noise_level = True

    def __init__(self, model: nn.Module, class_names: Sequence[str], *, aliases: Mapping[str, int] | None = None,
                 name: str | None = None):
        super().__init__(model, class_names, aliases, name)

    def noisy_sample(self, images: torch.Tensor, noise_level: NoiseLevel | None) -> tuple[torch.Tensor, torch.Tensor]:
        """x_t and √(1−ᾱ) per image, rebuilt from the candidates (see the class docstring)."""
        check_images(images, who=self.name)
        x0 = 2 * images - 1
        if noise_level is None:
            return x0, torch.zeros(len(images), device=images.device)
        if noise_level.eps is None or noise_level.eps.shape != images.shape:
            got = None if noise_level.eps is None else tuple(noise_level.eps.shape)
            raise ValueError(f"{self.name} rebuilds x_t from the denoiser's noise estimate, which must be shaped as "
                             f"the images {tuple(images.shape)}, got {got}; noise-aware scorers need a pixel-space "
                             "diffusion model (not a latent one)")
        a = noise_level.alpha_bar
        x_t = a**0.5 * x0 + noise_level.noise_std * noise_level.eps.to(x0)
        return x_t, torch.full((len(images),), noise_level.noise_std, device=images.device)

    def energy(self, candidates: torch.Tensor, condition: Any, noise_level: NoiseLevel | None = None) -> torch.Tensor:
        target = self.classes(condition, len(candidates)).to(candidates.device)
        logits = self.model(*self.noisy_sample(candidates, noise_level)).float()
        return -torch.log_softmax(logits, dim=-1).gather(1, target[:, None]).squeeze(1)
