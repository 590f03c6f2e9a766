"""Drill: every text scorer, and the answer extraction they share, on long adversarial generator output.

Each input is sized so that a pattern that backtracks exponentially would run for hours (the first
equation pattern took 0.3 s at 8 terms and over 60 s at 12), while linear work takes milliseconds."""

import pytest
from drill_helpers import finishes_within

from consensus.scorers.text import AnswerAgreement, ArithmeticVerifier, LMLikelihood
from consensus.scorers.text.answers import extract_flexible, extract_strict
from consensus.scorers.text.arithmetic import check_equations

ADVERSARIAL = {
    "long sum without =": "  +  ".join(["12"] * 3000) + " is the total",
    "long sum, a word, then =": "  +  ".join(["12"] * 3000) + " total = 36000",
    "thousands of digits": "7" * 20000,
    "digits and commas": "1," * 10000,
    "deep brackets": "(" * 5000 + "1 + 2" + ")" * 5000 + " = 3",
    "repeated whitespace": "#### " + " " * 20000 + "x",
    "answer lines": "#### :  " * 3000,
    "many equations": "3 x 4 = 12\n" * 2000,
}


@pytest.mark.parametrize("name", ADVERSARIAL)
def test_equations_and_answers_are_linear_in_the_text(name):
    text = ADVERSARIAL[name]
    checks = finishes_within(30, check_equations, text)
    finishes_within(30, extract_strict, text)
    finishes_within(30, extract_flexible, text)
    if name == "many equations":
        assert checks == [("3 x 4 = 12", True)] * 2000
    if name == "long sum, a word, then =":
        assert checks == []  # the sum is not what equals 36000: a word stands between


@pytest.mark.parametrize("scorer", [ArithmeticVerifier(), AnswerAgreement()], ids=lambda s: s.name)
def test_text_scorers_score_adversarial_candidates_promptly(scorer):
    energies = finishes_within(60, scorer.energy, list(ADVERSARIAL.values()), "How much?")
    assert energies.shape == (len(ADVERSARIAL),)


def test_the_likelihood_scorer_takes_long_candidates_and_names_the_context_it_cannot(tiny_lm):
    long = ["12 + " * 40, "7" * 150]  # within the tiny model's 256 positions
    energies = finishes_within(60, LMLikelihood(tiny_lm).energy, long, "How much?")
    assert energies.isfinite().all()
    with pytest.raises(ValueError, match="beyond the 256-token context of tiny-gpt2"):
        LMLikelihood(tiny_lm).energy(["7 " * 400], "How much?")
