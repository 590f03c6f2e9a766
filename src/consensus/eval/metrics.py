"""The one metrics module of every task.

- Accuracy with its Wilson interval, paired differences between methods (paired bootstrap, exact
  sign test), the sample-set metrics pass@k and maj@k, and a classifier's ranking AUC.
- Sample quality in a held-out feature space: FID, KID, Inception-style score, written once in
  float64 (for Fashion-MNIST the feature network and the classifier are evaluation-only models of
  the zoo, which no guidance scorer shares data with, in the role Inception-v3 plays for ImageNet).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Accuracy:
    correct: int
    total: int
    low: float
    high: float

    @property
    def value(self) -> float:
        return self.correct / self.total if self.total else float("nan")

    def __str__(self) -> str:
        return f"{100 * self.value:.1f}% [{100 * self.low:.1f}, {100 * self.high:.1f}] ({self.correct}/{self.total})"


def accuracy(outcomes: Sequence[bool], z: float = 1.959964) -> Accuracy:
    """Share of True with its Wilson score interval (95% by default).

    Wilson rather than the normal approximation because accuracies near 0 or 1 on a few
    hundred problems are common here, where p ± z·sqrt(p(1-p)/n) leaves [0, 1]:
        centre = (p + z²/2n) / (1 + z²/n),  half = z·sqrt(p(1-p)/n + z²/4n²) / (1 + z²/n)
    """
    n, k = len(outcomes), sum(bool(o) for o in outcomes)
    if n == 0:
        return Accuracy(0, 0, float("nan"), float("nan"))
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return Accuracy(k, n, max(0.0, centre - half), min(1.0, centre + half))


def majority(answers: Sequence[str | None]) -> str | None:
    """The most frequent non-None answer; ties go to the answer seen first."""
    votes = Counter(a for a in answers if a is not None)
    if not votes:
        return None
    top = max(votes.values())
    return next(a for a in answers if a is not None and votes[a] == top)


def pass_at_k(correct: Sequence[bool], k: int) -> float:
    """Unbiased pass@k from n >= k samples with c correct (Chen et al., 2021): 1 - C(n-c, k) / C(n, k)."""
    n, c = len(correct), sum(correct)
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def paired_difference(a: Sequence[float], b: Sequence[float], resamples: int = 10_000, seed: int = 0) -> dict:
    """Mean of a - b over problems with a 95% paired bootstrap interval, in accuracy points. Each outcome is a
    bool, or a problem's expected correctness (a method's accuracy averaged over subsets of a draw, or seeds);
    wins and losses count the problems where a is above or below b."""
    rng = random.Random(seed)
    diffs = [float(x) - float(y) for x, y in zip(a, b)]
    n = len(diffs)
    low, high = _interval_95([sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples)])
    return {"points": 100 * sum(diffs) / n, "low": 100 * low, "high": 100 * high, "wins": sum(d > 0 for d in diffs),
            "losses": sum(d < 0 for d in diffs)}


def mean_interval(values: Sequence[float], resamples: int = 10_000, seed: int = 0) -> tuple[float, float, float]:
    """The mean of per-problem outcomes in [0, 1] (expected correctness, where Wilson's count of successes does not
    apply) with its 95% bootstrap interval over problems."""
    rng = random.Random(seed)
    n = len(values)
    low, high = _interval_95([sum(values[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples)])
    return sum(values) / n, low, high


def _interval_95(resampled: Sequence[float]) -> tuple[float, float]:
    """The 2.5th and 97.5th percentiles of a bootstrap's resampled statistics."""
    ordered = sorted(resampled)
    return ordered[int(0.025 * len(ordered))], ordered[int(0.975 * len(ordered)) - 1]


def ranking_auc(scores: torch.Tensor, positive: torch.Tensor) -> float:
    """P(a positive scores above a negative), ties counting half: how well a verifier ranks, which is all that
    selection uses (accuracy at one threshold says little when most candidates are wrong)."""
    pos, neg = scores[positive], scores[~positive]
    if not len(pos) or not len(neg):
        return float("nan")
    above = (pos[:, None] > neg[None, :]).double().mean() + 0.5 * (pos[:, None] == neg[None, :]).double().mean()
    return above.item()


def within_problem_auc(energies: Sequence[Sequence[float]], right: Sequence[Sequence[bool]]) -> float:
    """``ranking_auc`` of the energies (lower is better) within each problem that has right and wrong candidates,
    averaged: what selection among a problem's candidates uses (pooled over problems, the AUC also rewards telling
    easy problems from hard ones)."""
    aucs = [ranking_auc(-torch.tensor(e, dtype=torch.float64), torch.tensor(r))
            for e, r in zip(energies, right) if 0 < sum(r) < len(r)]
    return sum(aucs) / len(aucs) if aucs else float("nan")


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact binomial p-value of ``wins`` against ``losses`` among the discordant paired items."""
    n = wins + losses
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(wins, losses) + 1)) / 2**n
    return min(1.0, 2 * tail)


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


def frechet_difference(features_a: torch.Tensor, features_b: torch.Tensor, reference: torch.Tensor,
                       resamples: int = 200, seed: int = 0) -> dict:
    """FID(a) − FID(b) against one reference, with a 95% paired bootstrap interval: a and b are paired row by row
    (the same seed and class), so each resample draws the same rows of both. The reference is held fixed."""
    if features_a.shape != features_b.shape:
        raise ValueError(f"paired features must match in shape, got {tuple(features_a.shape)} and "
                         f"{tuple(features_b.shape)}")
    generator = torch.Generator().manual_seed(seed)
    differences = []
    for _ in range(resamples):
        rows = torch.randint(len(features_a), (len(features_a),), generator=generator)
        differences.append(frechet_distance(features_a[rows], reference) - frechet_distance(features_b[rows], reference))
    low, high = _interval_95(differences)
    return {"difference": frechet_distance(features_a, reference) - frechet_distance(features_b, reference),
            "low": low, "high": high}


def duplicate_share(images: torch.Tensor, labels: torch.Tensor, tolerance: float = 1 / 255) -> float:
    """The share of images that repeat an earlier image of their class to within ``tolerance`` per pixel:
    what particle resampling costs in diversity when copies follow one deterministic path."""
    repeats = 0
    for label in labels.unique():
        group = images[labels == label].flatten(1)
        close = torch.cdist(group, group, p=float("inf")) <= tolerance
        repeats += int(close.tril(-1).any(1).sum())
    return repeats / len(images)


def within_class_spread(features: torch.Tensor, labels: torch.Tensor) -> float:
    """Diversity: the mean distance between two samples of the same class in a feature space, averaged over
    the classes. Divided by the same for real images, 1 means as varied as the data; FID sees a collapse onto a
    few good images only weakly at a few hundred samples, this sees it directly."""
    spreads = []
    for label in labels.unique():
        group = features[labels == label].double()
        if len(group) > 1:
            distances = torch.cdist(group, group)
            spreads.append(distances.sum() / (len(group) * (len(group) - 1)))
    if not spreads:
        raise ValueError("within-class spread needs two samples of some class")
    return float(torch.stack(spreads).mean())


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
