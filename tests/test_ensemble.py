import math

import pytest
import torch

from consensus import Ensemble, NonFiniteEnergyError, Scorer, normalize


class Fixed(Scorer):
    """A scorer returning given energies: the ensemble's arithmetic is what is under test."""

    modality = "text"

    def __init__(self, values, name="Fixed"):
        self.values, self._name = values, name

    @property
    def name(self):
        return self._name

    def energy(self, candidates, condition):
        return torch.tensor(self.values, dtype=torch.float64)[: len(candidates)]


def test_zscore_has_zero_mean_unit_std_and_keeps_order():
    z = normalize(torch.tensor([1.0, 2.0, 4.0, 9.0]), "zscore")
    assert z.mean().abs() < 1e-6 and (z.std(unbiased=False) - 1).abs() < 1e-6
    assert torch.equal(torch.argsort(z), torch.arange(4))


def test_rank_is_in_unit_interval_with_shared_ties():
    r = normalize(torch.tensor([5.0, 1.0, 5.0, 3.0]), "rank")
    assert r.tolist() == pytest.approx([5 / 6, 0.0, 5 / 6, 1 / 3])


def test_minmax_spans_zero_to_one():
    assert normalize(torch.tensor([2.0, 4.0, 3.0]), "minmax").tolist() == pytest.approx([0.0, 1.0, 0.5])


@pytest.mark.parametrize("mode", ["zscore", "rank", "minmax"])
def test_constant_energies_carry_no_opinion(mode):
    assert normalize(torch.tensor([3.0, 3.0, 3.0]), mode).tolist() == [0.0, 0.0, 0.0]


def test_unknown_normalization_is_refused():
    with pytest.raises(ValueError, match="zscore"):
        Ensemble([Fixed([1.0])], normalization="softmax")


def test_weighted_sum_and_per_scorer_energies():
    ens = Ensemble([Fixed([1.0, 2.0], "a"), Fixed([10.0, 0.0], "b")], weights=[2.0, 0.5])
    out = ens(["x", "y"], None)
    assert out.total.tolist() == pytest.approx([2 * 1 + 0.5 * 10, 2 * 2 + 0.5 * 0])
    assert set(out.per_scorer) == {"a", "b"} and out.per_scorer["b"].tolist() == [10.0, 0.0]
    assert set(out.seconds) == {"a", "b"}


def test_normalization_stops_a_wide_scorer_from_deciding_alone():
    wide, narrow = Fixed([0.0, 1000.0, 500.0], "wide"), Fixed([1.0, 0.0, 0.2], "narrow")
    assert int(torch.argmin(Ensemble([wide, narrow])(list("abc"), None).total)) == 0
    # z-scored, both count equally: candidate c is second-best for both and wins the sum
    assert int(torch.argmin(Ensemble([wide, narrow], normalization="zscore")(list("abc"), None).total)) == 2


def test_nan_raises_naming_the_scorer_and_the_fix():
    ens = Ensemble([Fixed([1.0, math.nan, 2.0], "broken")])
    with pytest.raises(NonFiniteEnergyError, match="broken.*nonfinite='drop'"):
        ens(list("abc"), None)


def test_drop_policy_excludes_nonfinite_candidates():
    ens = Ensemble([Fixed([1.0, math.inf, 3.0], "a"), Fixed([0.0, 0.0, 1.0], "b")], normalization="minmax",
                   nonfinite="drop")
    total = ens(list("abc"), None).total
    assert math.isinf(total[1]) and total[0] == 0.0 and total[2] == 2.0


def test_wrong_shape_is_refused():
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        Ensemble([Fixed([1.0, 2.0])])(list("abc"), None)


def test_items_scored_together_get_what_each_gets_alone():
    from consensus.scorers.text import AnswerAgreement, ArithmeticVerifier

    calls = []

    class Counted(ArithmeticVerifier):
        def energy_items(self, candidate_sets, conditions, noise_levels=None):
            calls.append(len(candidate_sets))
            return super().energy_items(candidate_sets, conditions, noise_levels)

    ens = Ensemble([Counted(), AnswerAgreement()], weights=[1.0, 0.5], normalization="zscore")
    items = [(["2 + 3 = 5\n#### 5", "2 + 3 = 6\n#### 6", "#### 5"], "What is 2 + 3?"),
             (["7 * 6 = 42\n#### 42", "7 * 6 = 43\n#### 43"], "What is 7 * 6?"),
             (["#### 1"], "What is 1?")]
    alone = [ens(c, x) for c, x in items]
    calls.clear()
    together = ens.score_items([c for c, _ in items], [x for _, x in items])
    assert calls == [3]  # one call of the scorer for the three items
    for a, b in zip(alone, together):
        assert torch.equal(a.total, b.total)
        assert {k: v.tolist() for k, v in a.per_scorer.items()} == {k: v.tolist() for k, v in b.per_scorer.items()}
        assert set(b.seconds) == set(a.seconds)


def test_items_scored_together_are_checked_item_by_item():
    ens = Ensemble([Fixed([1.0, 2.0])])
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        ens.score_items([list("ab"), list("abc")], [None, None])
    with pytest.raises(ValueError, match="one condition"):
        ens.score_items([list("ab")], [None, None])
    with pytest.raises(NonFiniteEnergyError, match="broken"):
        Ensemble([Fixed([1.0, math.nan], "broken")]).score_items([list("a"), list("ab")], [None, None])


def test_duplicate_names_and_missing_weights_are_refused():
    with pytest.raises(ValueError, match="unique"):
        Ensemble([Fixed([1.0], "a"), Fixed([1.0], "a")])
    with pytest.raises(ValueError, match="one weight per scorer"):
        Ensemble([Fixed([1.0])], weights=[1.0, 2.0])
    with pytest.raises(TypeError, match="Scorer"):
        Ensemble([lambda c, x: c])


def test_total_keeps_the_gradient_for_gradient_feedback():
    class Square(Scorer):
        modality, differentiable = "vector", True

        def energy(self, candidates, condition):
            return (candidates ** 2).sum(-1)

    x = torch.tensor([[1.0, 2.0], [3.0, 0.0]], requires_grad=True)
    Ensemble([Square()], weights=[0.5])(x, None).total.sum().backward()
    assert torch.allclose(x.grad, x.detach().double().float())  # d(0.5 x²)/dx = x


def test_the_worst_case_keeps_the_verdict_of_the_scorer_that_is_not_fooled():
    # Candidate a fools scorer "fooled" (its best) and wins the sum, though "honest" rates it poorly; b is fair
    # for both, and the worst case picks it.
    fooled, honest = Fixed([0.0, 0.5, 1.0, 1.0], "fooled"), Fixed([0.8, 0.5, 0.0, 1.0], "honest")
    summed = Ensemble([fooled, honest], normalization="minmax")(list("abcd"), None).total
    worst = Ensemble([fooled, honest], normalization="minmax", combination="worst")(list("abcd"), None).total
    assert int(torch.argmin(summed)) == 0 and int(torch.argmin(worst)) == 1
    assert worst.tolist() == pytest.approx([0.8, 0.5, 1.0, 1.0])  # per candidate, the larger of its two energies
    ignored = Ensemble([fooled, honest], [0.0, 1.0], normalization="minmax", combination="worst")
    assert ignored(list("abcd"), None).total.tolist() == pytest.approx([0.8, 0.5, 0.0, 1.0]), "a zero weight: no say"


def test_uncertainty_is_the_weighted_mean_plus_the_spread_across_scorers():
    a, b = Fixed([0.0, 1.0, 2.0], "a"), Fixed([2.0, 1.0, 0.0], "b")
    ens = Ensemble([a, b], [3.0, 1.0], normalization="minmax", combination="uncertainty", spread=2.0)
    total = ens(list("xyz"), None).total
    z = torch.tensor([[0.0, 0.5, 1.0], [1.0, 0.5, 0.0]], dtype=torch.float64)
    w = torch.tensor([[3.0], [1.0]], dtype=torch.float64)
    mean = (w * z).sum(0) / 4
    assert total.tolist() == pytest.approx((mean + 2.0 * ((w * (z - mean) ** 2).sum(0) / 4).sqrt()).tolist())
    no_spread = Ensemble([a, b], [3.0, 1.0], normalization="minmax", combination="uncertainty", spread=0.0)
    summed = Ensemble([a, b], [3.0, 1.0], normalization="minmax")
    assert int(torch.argmin(no_spread(list("xyz"), None).total)) == int(torch.argmin(summed(list("xyz"), None).total))
    assert "combination=uncertainty, spread=2" in repr(ens)


def test_conservative_combinations_keep_the_nonfinite_policy():
    ens = Ensemble([Fixed([1.0, math.nan, 3.0], "a"), Fixed([0.0, 1.0, 1.0], "b")], normalization="zscore",
                   nonfinite="drop", combination="worst")
    total = ens(list("abc"), None).total
    assert math.isinf(total[1]) and math.isfinite(total[0]) and math.isfinite(total[2])
    with pytest.raises(NonFiniteEnergyError, match="scorer a"):
        Ensemble([Fixed([math.nan, 1.0], "a")], normalization="zscore", combination="worst")(list("ab"), None)


@pytest.mark.parametrize("kwargs, message", [
    ({"combination": "median"}, "unknown combination 'median'"),
    ({"combination": "worst"}, "needs them on one scale"),
    ({"combination": "uncertainty", "normalization": "zscore", "spread": -1.0}, "spread must be"),
    ({"combination": "worst", "normalization": "zscore", "weights": [0.0]}, "positive weight"),
])
def test_conservative_combinations_refuse_what_they_cannot_do(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Ensemble([Fixed([1.0, 2.0])], **kwargs)
