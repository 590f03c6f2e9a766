"""FID, KID and the Inception-style score against their definitions."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from consensus.eval.metrics import (duplicate_share, frechet_difference, frechet_distance, inception_score,
                                    kernel_inception_distance, within_class_spread)


def test_fid_matches_the_scipy_matrix_square_root():
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(400, 6, generator=generator, dtype=torch.float64)
    b = (
        torch.randn(300, 6, generator=generator, dtype=torch.float64)
        @ torch.randn(6, 6, generator=generator, dtype=torch.float64)
        + 0.5
    )
    mu_a, mu_b = a.mean(0).numpy(), b.mean(0).numpy()
    cov_a, cov_b = np.cov(a.numpy(), rowvar=False), np.cov(b.numpy(), rowvar=False)
    expected = ((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * scipy.linalg.sqrtm(cov_a @ cov_b).real)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-6)


def test_kid_is_near_zero_for_one_distribution_and_positive_for_two():
    generator = torch.Generator().manual_seed(1)
    a, b = torch.randn(600, 8, generator=generator), torch.randn(600, 8, generator=generator)
    same, _ = kernel_inception_distance(a, b, subsets=20, subset_size=200)
    shifted, std = kernel_inception_distance(a, b + 1.0, subsets=20, subset_size=200)
    assert abs(same) < 0.05 < shifted and std >= 0


def test_inception_score_bounds():
    uniform = torch.full((50, 10), 0.1)
    confident_and_diverse = torch.eye(10).repeat(5, 1)
    confident_one_class = torch.eye(10)[torch.zeros(50, dtype=torch.long)]
    assert inception_score(uniform) == pytest.approx(1.0)
    assert inception_score(confident_and_diverse) == pytest.approx(10.0, rel=1e-6)
    assert inception_score(confident_one_class) == pytest.approx(1.0, abs=1e-6)


def test_frechet_difference_is_paired_and_its_interval_holds_the_difference():
    gen = torch.Generator().manual_seed(0)
    reference = torch.randn(400, 4, generator=gen)
    near = torch.randn(300, 4, generator=gen)
    far = near + 1.5  # the same rows, shifted: every resample sees both at once
    result = frechet_difference(far, near, reference, resamples=100)
    assert result["difference"] == pytest.approx(frechet_distance(far, reference) - frechet_distance(near, reference))
    assert 0 < result["low"] <= result["difference"] <= result["high"]
    with pytest.raises(ValueError, match="paired features must match"):
        frechet_difference(far[:10], near, reference)


def test_duplicates_and_within_class_spread_see_a_collapse():
    gen = torch.Generator().manual_seed(0)
    images, labels = torch.rand(8, 1, 4, 4, generator=gen), torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    collapsed = images.clone()
    collapsed[1:4] = collapsed[0]  # class 0: one image four times
    assert duplicate_share(images, labels) == 0 and duplicate_share(collapsed, labels) == 3 / 8
    features = images.flatten(1)
    assert within_class_spread(collapsed.flatten(1), labels) < within_class_spread(features, labels)
    assert within_class_spread(torch.zeros(4, 3), torch.tensor([0, 0, 1, 1])) == 0
