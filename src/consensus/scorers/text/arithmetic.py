"""ArithmeticVerifier: are the computations written in a worked solution right?

Candidates are solution texts (possibly partial, for step-level feedback); the condition is the
question, which this scorer does not read. Lower energy = fewer wrong computations.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch

from consensus.core.scorer import Scorer

# Every quantifier is possessive (Python 3.11): a run of spaces, digits or brackets is taken whole and never
# split between two quantifiers, which is what made the first version of this pattern backtrack
# exponentially ("12  +  12  +  ... is the total": 0.3 s at 8 terms, over 60 s at 12).
_NUM = r"[$£€]?\d[\d,]*+(?:\.\d+)?+%?+"
_OP = r"[-+*/×x÷]"
# A chain: a number, then any count of (operator, number), brackets allowed.
_HEAD = rf"(?:\(\s*+)*+{_NUM}"
_TAIL = rf"(?:\s*+\)*+\s*+{_OP}\s*+(?:\(\s*+)*+{_NUM}\s*+\)*+)"
_CHAIN = re.compile(rf"{_HEAD}{_TAIL}*+")
# An arithmetic expression (two or more numbers joined by operators), then '=' and the written result.
_EQUATION = re.compile(
    rf"({_HEAD}{_TAIL}++)\s*+=\s*+(-?\s?{_NUM})(?![\d.,]*\s*[/×*÷]\s*\d)"  # a fraction result (= 1/4) is skipped
)
_START = re.compile(r"[($£€\d]")


def find_equations(text: str) -> list[tuple[str, str]]:
    """``(expression, result)`` of every equation written in ``text``, left to right, in time linear in its length.

    As ``_EQUATION.findall``, but an attempt that fails skips the rest of its chain: a match started
    later inside the same chain reaches the same end (the chain's continuation is the same text) and
    fails there too, so the regex engine's retry at every character, quadratic on a long chain
    without '=', is never needed."""
    found, pos = [], 0
    while (start := _START.search(text, pos)) is not None:
        here = start.start()
        match = _EQUATION.match(text, here)
        if match is not None:
            found.append(match.groups())
            pos = match.end()
            continue
        chain = _CHAIN.match(text, here)
        pos = max(here + 1, chain.end() if chain is not None else here + 1)
    return found


def check_equations(solution: str) -> list[tuple[str, bool]]:
    """Every ``expression = result`` written in the solution, with whether the result is right.

    A result counts as right when it equals the expression's value rounded to the number of
    decimals written (so ``100/3 = 33.33`` is right, ``7/2 = 3`` is not).
    """
    checked = []
    for expression, written in find_equations(solution):
        value = _evaluate(expression)
        result = re.sub(r"[$£€,\s]", "", written).rstrip("%")
        if value is None:
            continue
        decimals = len(result.split(".")[1]) if "." in result else 0
        checked.append((f"{expression.strip()} = {written.rstrip(',')}", round(abs(value - float(result)), 9) < 0.5 * 10 ** -decimals))
    return checked


def _evaluate(expression: str) -> float | None:
    """Value of an arithmetic expression written in a solution, or None if it does not parse."""
    python = expression.replace("×", "*").replace("x", "*").replace("÷", "/").replace(",", "")
    python = re.sub("[$£€]", "", python).replace("%", "/100")
    while python.count("(") > python.count(")"):  # the regex may start inside a bracket
        python = python.replace("(", "", 1)
    while python.count(")") > python.count("("):
        python = python[::-1].replace(")", "", 1)[::-1]
    if not re.fullmatch(r"[\d.+\-*/() ]+", python):
        return None
    try:
        # eval is safe here: the fullmatch above lets only digits, operators and brackets through.
        return float(eval(python, {"__builtins__": {}}))
    except (SyntaxError, ZeroDivisionError, TypeError, ValueError):
        return None


class ArithmeticVerifier(Scorer):
    """Energy = the share of wrong computations among those written; ``unverifiable`` (default
    0.5, no evidence either way) for a solution that writes none."""

    modality = "text"
    differentiable = False

    def __init__(self, unverifiable: float = 0.5):
        self.unverifiable = unverifiable

    def energy(self, candidates: Sequence[str], condition: str) -> torch.Tensor:
        energies = []
        for solution in candidates:
            checks = check_equations(solution)
            energies.append(sum(not ok for _, ok in checks) / len(checks) if checks else self.unverifiable)
        return torch.tensor(energies, dtype=torch.float64)
