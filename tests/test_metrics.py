import pytest

from consensus.eval.metrics import accuracy, majority, pass_at_k, ranking_auc


def test_wilson_interval_contains_the_estimate_and_stays_in_unit_range():
    a = accuracy([True] * 30 + [False] * 70)
    assert a.value == 0.3 and a.low < 0.3 < a.high and (a.low, a.high) == pytest.approx((0.219, 0.396), abs=1e-3)
    zero = accuracy([False] * 20)
    assert zero.low == 0.0 and 0 < zero.high < 0.2


def test_majority_vote_ignores_missing_answers_and_breaks_ties_by_first_seen():
    assert majority([None, "3", "4", "4", "3"]) == "3"
    assert majority(["5", None, "5", "2"]) == "5"
    assert majority([None, None]) is None


def test_pass_at_k_is_unbiased():
    assert pass_at_k([True, False, False, False], 1) == pytest.approx(0.25)
    assert pass_at_k([True, False, False, False], 4) == 1.0
    assert pass_at_k([False] * 5, 2) == 0.0
    with pytest.raises(ValueError):
        pass_at_k([True], 2)


def test_ranking_auc_is_the_share_of_positive_negative_pairs_ordered_right():
    import torch

    positive = torch.tensor([True, True, False, False])
    assert ranking_auc(torch.tensor([3.0, 2.0, 1.0, 0.0]), positive) == 1.0
    assert ranking_auc(torch.tensor([0.0, 1.0, 2.0, 3.0]), positive) == 0.0
    assert ranking_auc(torch.tensor([1.0, 0.0, 1.0, -1.0]), positive) == pytest.approx(0.625)  # one tie counts half
