"""Image scorers (differentiable): any torch classifier, transformers CLIP, the offline ImageNet classifiers."""

from consensus.scorers.image.classifier import ClassifierScorer
from consensus.scorers.image.clip import CLIPScorer
from consensus.scorers.image.imagenet import MobileNetV2, imagenet_scorer

__all__ = ["CLIPScorer", "ClassifierScorer", "MobileNetV2", "imagenet_scorer"]
