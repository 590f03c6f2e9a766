"""The Scorer contract, run on real models against every scorer that reads text or images (or video frames).

The robot's per-view scorers read rendered scenes; their contract is in test_robot_scorers.py.
"""

import copy
from dataclasses import dataclass
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


@dataclass
class Case:
    """A scorer with candidates it must rank: ``candidates[0]`` fits the condition, ``candidates[1]`` does not."""

    scorer: Scorer
    candidates: object
    condition: object


TEXT = [GOOD, BAD, OTHER, ""]


@cache
def _fashion_images():
    from consensus.image.fashion_data import FASHION_CLASSES, load_fashion_mnist

    images, labels = load_fashion_mnist("test")
    trouser = FASHION_CLASSES.index("Trouser")
    first = lambda want: int(((labels == trouser) == want).nonzero()[0])
    return images[[first(True), first(False), first(False) + 1]]


@cache
def _verifier():
    return TrainedVerifier()  # loads the sentence encoder: once per session


@cache
def _colour_question():
    """The first easy-VQA test colour question as a 4-frame clip, and its answer."""
    from consensus.vqa.condition import VideoQuestion
    from consensus.vqa.data import easy_vqa_examples

    example = next(e for e in easy_vqa_examples("test") if e.question_type == "color")
    return VideoQuestion(tuple(example.frames(4)), example.question), example.answer


def _vqa(name):
    from consensus.vqa.scorers import TinyClipScorer

    condition, answer = _colour_question()
    wrong = "brown" if answer != "brown" else "teal"
    return Case(TinyClipScorer.load(name), [answer, wrong, "circle", ""], condition)


def _photo():
    import skimage.data
    from PIL import Image

    from consensus.vqa.condition import VideoQuestion
    from consensus.vqa.scorers import ClassifierTextScorer

    cat = VideoQuestion((Image.fromarray(skimage.data.chelsea()),), "what animal is this?")
    return Case(ClassifierTextScorer(), ["cat", "car", "a cat", "x"], cat)


def _fashion(name):
    from consensus.image.fashion_models import fashion_scorer

    return Case(fashion_scorer(name), _fashion_images(), "Trouser")


CASES = {
    "arithmetic": lambda request: Case(ArithmeticVerifier(), TEXT, QUESTION),
    "agreement": lambda request: Case(AnswerAgreement(), TEXT, QUESTION),
    "verifier": lambda request: Case(_verifier(), TEXT, QUESTION),
    "likelihood": lambda request: Case(LMLikelihood(request.getfixturevalue("gemma")), TEXT, QUESTION),
    "likelihood_tiny": lambda request: Case(LMLikelihood(request.getfixturevalue("tiny_lm"), name="LMLikelihood[tiny]"),
                                            TEXT, QUESTION),
    "fashion_cnn": lambda request: _fashion("cnn"),
    "fashion_mlp": lambda request: _fashion("mlp"),
    "fashion_resnet": lambda request: _fashion("resnet"),
    "vqa_clip_cnn": lambda request: _vqa("vqa-clip-cnn"),
    "vqa_clip_gru": lambda request: _vqa("vqa-clip-gru"),
    "vqa_clip_patch": lambda request: _vqa("vqa-clip-patch"),
    "vqa_imagenet_minilm": lambda request: _photo(),
}


@pytest.fixture(params=CASES)
def case(request) -> Case:
    return CASES[request.param](request)


@pytest.fixture(params=[k for k in CASES if k != "likelihood_tiny"])  # a random model has no preference
def preferring_case(request) -> Case:
    return CASES[request.param](request)


@pytest.fixture(params=[k for k in CASES if k.startswith("fashion_")])  # the differentiable scorers
def differentiable_case(request) -> Case:
    return CASES[request.param](request)


def test_declares_modality_and_differentiability(case):
    scorer = case.scorer
    assert isinstance(scorer, Scorer)
    assert isinstance(type(scorer).modality, str) and isinstance(type(scorer).differentiable, bool)
    assert isinstance(scorer.name, str) and scorer.name


def test_returns_one_finite_energy_per_candidate_and_never_mutates(case):
    before = copy.deepcopy(case.candidates)
    energies = case.scorer.energy(case.candidates, case.condition)
    n = len(case.candidates)
    assert isinstance(energies, torch.Tensor) and energies.shape == (n,) and energies.dtype.is_floating_point
    assert torch.isfinite(energies).all()
    same = torch.equal(before, case.candidates) if isinstance(before, torch.Tensor) else before == case.candidates
    assert same
    assert torch.allclose(energies, case.scorer.energy(case.candidates, case.condition))  # deterministic


def test_prefers_the_candidate_that_fits(preferring_case):
    case = preferring_case
    energies = case.scorer.energy(case.candidates, case.condition)
    assert energies[0] < energies[1]


def test_differentiable_scorers_give_a_gradient(differentiable_case):
    case = differentiable_case
    assert type(case.scorer).differentiable
    x = case.candidates.clone().requires_grad_(True)
    case.scorer.energy(x, case.condition).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


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
