"""Image scorers (differentiable): any torch classifier (clean or noise-aware), transformers CLIP, the offline
ImageNet classifiers, and any of them smoothed over noisy copies."""

from consensus.scorers.image.classifier import ClassifierScorer, NoiseAwareClassifierScorer
from consensus.scorers.image.clip import CLIPScorer
from consensus.scorers.image.imagenet import MobileNetV2, imagenet_scorer
from consensus.scorers.image.smoothed import Smoothed

__all__ = ["CLIPScorer", "ClassifierScorer", "MobileNetV2", "NoiseAwareClassifierScorer", "Smoothed",
           "imagenet_scorer"]
