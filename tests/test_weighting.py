import random

import pytest
import torch
from test_ensemble import Fixed

from consensus import Ensemble
from consensus.core.weighting import DevSet, fit_weights, select_with_weights

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
