"""Image generation by gradient-based consensus: a diffusion generator guided by an ensemble of image scorers.

- :mod:`~consensus.image.guidance`: the guidance update, wrapping the model's prediction.
- :mod:`~consensus.image.diffusion`: the generator over any diffusers UNet, scheduler and VAE.
- :mod:`~consensus.image.classifier`, :mod:`~consensus.image.clip`, :mod:`~consensus.image.imagenet`: scorers.
- :mod:`~consensus.image.fashion_data`, :mod:`~consensus.image.fashion_models`, :mod:`~consensus.image.default`:
  the embedded Fashion-MNIST default; :mod:`~consensus.image.metrics`, :mod:`~consensus.image.evaluate`: evaluation.
"""

from consensus.image.classifier import ClassifierScorer
from consensus.image.clip import CLIPScorer
from consensus.image.diffusion import DiffusionGenerator, GenerationResult, sample_loop
from consensus.image.guidance import (
    SCHEDULES,
    EnergyGuidance,
    NonDifferentiableScorerError,
    NonFiniteGradientError,
)  # fmt: skip
from consensus.image.imagenet import MobileNetV2, imagenet_scorer

__all__ = [
    "SCHEDULES",
    "CLIPScorer",
    "ClassifierScorer",
    "DiffusionGenerator",
    "EnergyGuidance",
    "GenerationResult",
    "MobileNetV2",
    "NonDifferentiableScorerError",
    "NonFiniteGradientError",
    "imagenet_scorer",
    "sample_loop",
]
