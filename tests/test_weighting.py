import math
import random

import pytest
import torch
from test_ensemble import Fixed

from consensus import Ensemble
from consensus.core.weighting import DevSet, fit_unlabelled_weights, fit_weights, select_with_weights

NAMES = ["expert", "noise", "contrarian"]


def synthetic_dev(problems: int, seed: int = 0) -> list[DevSet]:
    """8 candidates per problem, two right: ``expert`` ranks right ones lower (with noise), ``noise``
    is unrelated to rightness, ``contrarian`` prefers wrong ones."""
    rng = random.Random(seed)
    sets = []
    for _ in range(problems):
        right = [True, True] + [False] * 6
        rng.shuffle(right)
        energies = {
            "expert": [(0.0 if r else 1.0) + rng.gauss(0, 0.4) for r in right],
            "noise": [rng.gauss(0, 1) for _ in right],
            "contrarian": [(1.0 if r else 0.0) + rng.gauss(0, 0.4) for r in right],
        }
        sets.append(DevSet(energies, right))
    return sets


def accuracy(sets: list[DevSet], weights: list[float]) -> float:
    return sum(s.right[select_with_weights(s.energies, NAMES, weights)] for s in sets) / len(sets)


def test_fitted_weights_trust_the_expert_and_beat_equal_weights_on_fresh_problems():
    weights = fit_weights(synthetic_dev(200), NAMES)
    assert sum(weights) == pytest.approx(len(NAMES))  # rescaled to mean 1
    assert weights[0] > 5 * max(weights[1:])
    assert min(weights) >= 0
    test = synthetic_dev(300, seed=1)
    assert accuracy(test, weights) > accuracy(test, [1.0, 1.0, 1.0]) + 0.3


def test_selection_from_stored_energies_is_the_ensembles():
    sets = synthetic_dev(20, seed=2)
    weights = [2.0, 0.5, 0.1]
    for s in sets:
        ensemble = Ensemble([Fixed(s.energies[n], name=n) for n in NAMES], weights=weights, normalization="zscore")
        chosen = int(torch.argmin(ensemble(list(range(8)), None).total))
        assert select_with_weights(s.energies, NAMES, weights) == chosen


def test_a_development_set_without_contrast_is_refused():
    uninformative = [DevSet({n: [0.0, 1.0] for n in NAMES}, [True, True]),
                     DevSet({n: [0.0, 1.0] for n in NAMES}, [False, False])]
    with pytest.raises(ValueError, match="both a right and a wrong"):
        fit_weights(uninformative, NAMES)


def test_a_scorer_missing_from_the_development_energies_is_named():
    sets = [DevSet({"expert": [0.0, 1.0]}, [True, False])]
    with pytest.raises(ValueError, match="noise"):
        fit_weights(sets, NAMES)


def test_non_finite_development_energies_are_named():
    sets = [DevSet({"expert": [0.0, None], "noise": [0.0, 1.0], "contrarian": [float("inf"), 1.0]}, [True, False])]
    with pytest.raises(ValueError, match=r"\['expert', 'contrarian'\]"):
        fit_weights(sets, NAMES)


def crowd(problems: int, strengths: dict[str, float], seed: int = 0) -> list[DevSet]:
    """8 candidates per problem, two right; each scorer sees rightness with its own strength and its own noise."""
    rng = random.Random(seed)
    sets = []
    for _ in range(problems):
        right = [True, True] + [False] * 6
        rng.shuffle(right)
        sets.append(DevSet({n: [-(k if r else 0.0) + rng.gauss(0, 1) for r in right] for n, k in strengths.items()},
                           right))
    return sets


def test_unlabelled_weights_recover_the_reliable_scorer_from_agreement_alone():
    strengths = {"good": 2.5, "noisy": 0.5, "noisier": 0.3}
    names = list(strengths)
    for seed in (5, 6, 7):  # the noisy pair agree little with each other, which makes the estimate vary
        weights = fit_unlabelled_weights([s.energies for s in crowd(300, strengths, seed)], names)
        assert weights[0] > 1.5 * max(weights[1:])
    dev = crowd(300, strengths)
    weights = fit_unlabelled_weights([s.energies for s in dev], names)  # labels never seen
    assert sum(weights) == pytest.approx(3) and weights[0] > 3 * max(weights[1:]) and min(weights) >= 0
    test = crowd(400, strengths, seed=1)

    def accuracy_of(w):
        return sum(s.right[select_with_weights(s.energies, names, w)] for s in test) / len(test)

    fitted = fit_weights(dev, names)
    assert accuracy_of(weights) > accuracy_of([1.0, 1.0, 1.0]) + 0.05
    assert accuracy_of(weights) > accuracy_of(fitted) - 0.03  # about what labels would give


def test_unlabelled_weights_give_a_scorer_against_the_crowd_no_say():
    sets = crowd(300, {"a": 1.5, "b": 1.0, "c": 1.0}, seed=3)
    rng = random.Random(4)
    for s in sets:  # a fourth scorer that prefers the wrong candidates
        s.energies["contrarian"] = [(2.0 if r else 0.0) + rng.gauss(0, 1) for r in s.right]
    weights = fit_unlabelled_weights([s.energies for s in sets], ["a", "b", "c", "contrarian"])
    assert weights[3] == 0 and weights[0] > weights[1] > 0


def test_unlabelled_weights_refuse_what_cannot_identify_them():
    sets = crowd(20, {"a": 1.0, "b": 1.0})
    with pytest.raises(ValueError, match="at least three"):
        fit_unlabelled_weights([s.energies for s in sets], ["a", "b"])
    with pytest.raises(ValueError, match="finite energies"):
        fit_unlabelled_weights([{"a": [math.nan, 1.0], "b": [0.0, 1.0], "c": [1.0, 0.0]}], ["a", "b", "c"])
