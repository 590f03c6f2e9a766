"""Sample-quality metrics computed in a held-out feature space: FID, KID, Inception-style score.

The formulas are the standard ones (written once, in float64); for Fashion-MNIST the feature
network and the classifier are the evaluation-only models of ``fashion_models``, which no
guidance scorer shares data with, in the role Inception-v3 plays for ImageNet.
"""

from __future__ import annotations

import torch


def frechet_distance(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """FID (Heusel et al. 2017): ‖μa − μb‖² + Tr(Σa + Σb − 2 (Σa Σb)^½) between Gaussian fits.

    Tr((Σa Σb)^½) is the sum of the square roots of the eigenvalues of Σa Σb, which are real and
    non-negative for covariance matrices (small imaginary/negative round-off is dropped).
    """
    a, b = features_a.double(), features_b.double()
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)
    eigenvalues = torch.linalg.eigvals(cov_a @ cov_b).real.clamp_min(0)
    return float((mu_a - mu_b).pow(2).sum() + cov_a.trace() + cov_b.trace() - 2 * eigenvalues.sqrt().sum())


def kernel_inception_distance(
    features_a: torch.Tensor, features_b: torch.Tensor, subsets: int = 50, subset_size: int = 500, seed: int = 0
) -> tuple[float, float]:
    """KID (Bińkowski et al. 2018): unbiased MMD² with the kernel (x·y/d + 1)³, mean and std over random subsets."""
    a, b = features_a.double(), features_b.double()
    m = min(subset_size, len(a), len(b))
    d = a.shape[1]
    generator = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(subsets):
        x = a[torch.randperm(len(a), generator=generator)[:m]]
        y = b[torch.randperm(len(b), generator=generator)[:m]]
        kxx, kyy, kxy = ((x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3)
        off_diagonal = (kxx.sum() - kxx.diagonal().sum() + kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
        values.append(off_diagonal - 2 * kxy.mean())
    values_t = torch.stack(values)
    return float(values_t.mean()), float(values_t.std()) if subsets > 1 else 0.0


def inception_score(probabilities: torch.Tensor, splits: int = 1) -> float:
    """IS (Salimans et al. 2016): exp E_x KL(p(y|x) ‖ p(y)), averaged over ``splits`` chunks; from 1 to the class count."""
    p = probabilities.double().clamp_min(1e-12)
    scores = []
    for chunk in p.chunk(splits):
        marginal = chunk.mean(0, keepdim=True)
        scores.append((chunk * (chunk.log() - marginal.log())).sum(1).mean().exp())
    return float(torch.stack(scores).mean())
