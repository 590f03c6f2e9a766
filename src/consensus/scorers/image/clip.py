"""A scorer over a transformers ``CLIPModel``: energy = 1 − cos(image embedding, text embedding).

The image side is preprocessed with differentiable ops (resize, centre crop, CLIP's
normalisation), so the energy has a gradient with respect to the pixels. Optional cut-outs
(random crops, as in CLIP-guided diffusion) average the energy over several views so that the
gradient does not exploit one fixed framing; they are drawn from a fixed seed, so the same
images always get the same energy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from consensus.core.scorer import Scorer
from consensus.scorers.image.checks import check_images
from consensus.scorers.image.classifier import resize_and_crop

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


class CLIPScorer(Scorer):
    """Image–text energy ``1 − cos`` in [0, 2] from a CLIP model; the condition is a text or one text per image.

    Args:
        model: a transformers ``CLIPModel`` (frozen and put in eval mode here).
        tokenizer: its tokenizer (``CLIPTokenizer`` or the fast one).
        cutouts: number of random crops per image (0: the whole image only).
        cutout_min: the smallest crop side, as a fraction of the shorter image side.
        seed: the seed of the cut-outs.
        name: a unique scorer name; defaults to ``CLIPScorer``.
    """

    modality = "image"
    differentiable = True

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        cutouts: int = 0,
        cutout_min: float = 0.5,
        seed: int = 0,
        name: str | None = None,
    ):
        if cutouts < 0 or not 0 < cutout_min <= 1:
            raise ValueError(f"cutouts must be >= 0 and cutout_min in (0, 1], got {cutouts} and {cutout_min}")
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.image_size = model.config.vision_config.image_size
        self.cutouts, self.cutout_min, self.seed = cutouts, cutout_min, seed
        self._name = name
        self._text_cache: dict[str, torch.Tensor] = {}

    @property
    def name(self) -> str:
        return self._name or super().name

    def text_embeddings(self, texts: Sequence[str]) -> torch.Tensor:
        """Unit text embeddings ``[len(texts), D]`` (cached: the prompts repeat every denoising step)."""
        missing = sorted({t for t in texts if t not in self._text_cache})
        if missing:
            tokens = self.tokenizer(missing, padding=True, truncation=True, return_tensors="pt")
            with torch.no_grad():
                embedded = _unit(self._features(self.model.get_text_features(**tokens.to(self.model.device))))
            self._text_cache.update(zip(missing, embedded))
        return torch.stack([self._text_cache[t] for t in texts])

    def _views(self, images: torch.Tensor) -> list[torch.Tensor]:
        views = [resize_and_crop(images, self.image_size)]
        generator = torch.Generator().manual_seed(self.seed)
        side = min(images.shape[-2:])
        for _ in range(self.cutouts):
            size = int(side * (self.cutout_min + (1 - self.cutout_min) * torch.rand((), generator=generator).item()))
            top = int(torch.randint(0, images.shape[-2] - size + 1, (), generator=generator))
            left = int(torch.randint(0, images.shape[-1] - size + 1, (), generator=generator))
            crop = images[..., top : top + size, left : left + size]
            views.append(nn.functional.interpolate(crop, size=(self.image_size,) * 2, mode="bilinear", antialias=True))
        return views

    def energy(self, candidates: torch.Tensor, condition: Any) -> torch.Tensor:
        check_images(candidates, 3, who=self.name)
        texts = [condition] * len(candidates) if isinstance(condition, str) else list(condition)
        if len(texts) != len(candidates) or not all(isinstance(t, str) for t in texts):
            raise ValueError(f"{self.name} needs a text, or one text per image ({len(candidates)}), as the condition")
        x = candidates.expand(-1, 3, -1, -1)
        mean = torch.tensor(CLIP_MEAN, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        std = torch.tensor(CLIP_STD, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        views = torch.cat([(v - mean) / std for v in self._views(x)])
        image = _unit(self._features(self.model.get_image_features(pixel_values=views)))
        text = self.text_embeddings(texts).to(image).repeat(1 + self.cutouts, 1)
        cosine = (image * text).sum(-1).view(1 + self.cutouts, len(candidates)).mean(0)
        return 1 - cosine

    @staticmethod
    def _features(output: Any) -> torch.Tensor:
        # transformers 5 may return a model output holding the projected embeddings; 4.x returns the tensor.
        return output if isinstance(output, torch.Tensor) else output.pooler_output
