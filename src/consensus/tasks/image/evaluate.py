"""Evaluation of class-conditional Fashion-MNIST samples with the evaluation-only models.

Held-out accuracy (does the held-out classifier see the asked class?), FID and KID against
the test split in the held-out feature space, and the Inception-style score of the held-out
classifier. Neither model guides, and both were trained on part C of the training split,
which no scorer saw.
"""

from __future__ import annotations

from typing import Any

import torch

from consensus.scorers.image.checks import check_images
from consensus.tasks.image.data import load_fashion_mnist
from consensus.eval.metrics import accuracy, frechet_distance, inception_score, kernel_inception_distance
from consensus.zoo.fashion import load_fashion_classifier


class FashionEvaluator:
    """Scores a batch of generated images against the Fashion-MNIST test split."""

    def __init__(self, batch_size: int = 500):
        self.classifier = load_fashion_classifier("eval-classifier")
        self.feature_net = load_fashion_classifier("eval-features")
        self.batch_size = batch_size
        test_images, _ = load_fashion_mnist("test")
        self.reference_features = self.features(test_images)

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        check_images(images, 1, who="FashionEvaluator")
        return torch.cat([self.feature_net.features(chunk) for chunk in images.split(self.batch_size)])

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        check_images(images, 1, who="FashionEvaluator")
        return torch.cat([self.classifier(chunk).softmax(-1) for chunk in images.split(self.batch_size)])

    def evaluate(self, images: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
        """Metrics of ``images`` (``[N, 1, 28, 28]`` in [0, 1]) generated for the classes ``labels``."""
        probabilities = self.probabilities(images)
        held_out = accuracy((probabilities.argmax(1) == labels).tolist())
        kid, kid_std = kernel_inception_distance(self.features(images), self.reference_features)
        return {
            "n": len(labels),
            "accuracy": held_out.value,
            "accuracy_ci95": [held_out.low, held_out.high],  # Wilson, as every accuracy in the project
            "fid": frechet_distance(self.features(images), self.reference_features),
            "kid": kid,
            "kid_std": kid_std,
            "inception_score": inception_score(probabilities),
        }
