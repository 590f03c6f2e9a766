"""The Scorer contract, run against every scorer of the project, on real models."""

import copy
from functools import cache

import pytest
import torch

from consensus import Scorer
from consensus.math.scorers import AnswerAgreement, ArithmeticVerifier, LMLikelihood, check_equations
from consensus.math.verifier import TrainedVerifier

QUESTION = ("Ava has 12 apples. She buys 3 bags with 4 apples in each bag. "
            "How many apples does she have now?")
GOOD = "She buys 3 * 4 = 12 apples.\nShe now has 12 + 12 = 24 apples.\n#### 24"
BAD = "She buys 3 + 4 = 9 apples.\nShe now has 12 * 9 = 118 apples.\n#### 118"
OTHER = "She buys 3 * 4 = 12 apples.\nShe has 12 + 12 = 24.\n#### 24"


def arithmetic():
    return ArithmeticVerifier()


def agreement():
    return AnswerAgreement()


@cache
def verifier():
    return TrainedVerifier()  # loads the sentence encoder: once per session


def likelihood(request):
    return LMLikelihood(request.getfixturevalue("gemma"))


def likelihood_tiny(request):
    return LMLikelihood(request.getfixturevalue("tiny_lm"), name="LMLikelihood[tiny]")


# name -> (factory, whether it needs pytest's request to reach a model fixture)
FACTORIES = {"arithmetic": (arithmetic, False), "agreement": (agreement, False), "verifier": (verifier, False),
             "likelihood": (likelihood, True), "likelihood_tiny": (likelihood_tiny, True)}
PREFERS_GOOD = ["arithmetic", "agreement", "verifier", "likelihood"]  # the tiny random LM has no preference


@pytest.fixture(params=FACTORIES)
def scorer_and_key(request):
    factory, needs_request = FACTORIES[request.param]
    scorer = factory(request) if needs_request else factory()
    return scorer, request.param


def test_declares_modality_and_differentiability(scorer_and_key):
    scorer, _ = scorer_and_key
    assert isinstance(scorer, Scorer)
    assert isinstance(type(scorer).modality, str) and isinstance(type(scorer).differentiable, bool)
    assert isinstance(scorer.name, str) and scorer.name


def test_returns_one_finite_energy_per_candidate_and_never_mutates(scorer_and_key):
    scorer, _ = scorer_and_key
    candidates = [GOOD, BAD, OTHER, ""]
    before = copy.deepcopy(candidates)
    energies = scorer.energy(candidates, QUESTION)
    assert isinstance(energies, torch.Tensor) and energies.shape == (4,) and energies.dtype.is_floating_point
    assert torch.isfinite(energies).all()
    assert candidates == before
    assert torch.equal(energies, scorer.energy(candidates, QUESTION))  # deterministic


def test_prefers_a_right_solution_to_a_wrong_one(scorer_and_key):
    scorer, key = scorer_and_key
    if key not in PREFERS_GOOD:
        pytest.skip("a randomly initialised LM has no preference to test")
    energies = scorer.energy([GOOD, BAD, OTHER], QUESTION)
    assert energies[0] < energies[1]


def test_arithmetic_verifier_counts_wrong_computations():
    assert check_equations(BAD) == [("3 + 4 = 9", False), ("12 * 9 = 118", False)]
    assert ArithmeticVerifier().energy([GOOD, BAD, "no computation", "2 + 2 = 4, 2 * 3 = 7"], "").tolist() == \
        [0.0, 1.0, 0.5, 0.5]


def test_agreement_counts_other_candidates_with_the_same_answer():
    energies = AnswerAgreement().energy([GOOD, OTHER, BAD, "partial line\n"], "")
    assert energies.tolist() == pytest.approx([-1 / 3, -1 / 3, 0.0, 0.0])


def test_missing_verifier_weights_say_how_to_train_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="train_math_verifier.py"):
        TrainedVerifier(tmp_path)
