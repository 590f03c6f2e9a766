"""Accuracy with a confidence interval, paired differences between methods, and the sample-set metrics pass@k and maj@k."""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass


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


def paired_difference(a: Sequence[bool], b: Sequence[bool], resamples: int = 10_000, seed: int = 0) -> dict:
    """Mean of a - b over problems with a 95% paired bootstrap interval, in accuracy points."""
    rng = random.Random(seed)
    diffs = [int(x) - int(y) for x, y in zip(a, b)]
    n = len(diffs)
    means = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    return {"points": 100 * sum(diffs) / n, "low": 100 * means[int(0.025 * resamples)],
            "high": 100 * means[int(0.975 * resamples) - 1], "wins": diffs.count(1), "losses": diffs.count(-1)}
