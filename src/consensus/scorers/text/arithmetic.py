"""ArithmeticVerifier: are the computations written in a worked solution right?

Candidates are solution texts (possibly partial, for step-level feedback); the condition is the
question, which this scorer does not read. Lower energy = fewer wrong computations.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch

from consensus.core.scorer import Scorer

_NUM = r"[$£€]?\d[\d,]*(?:\.\d+)?%?"
_OP = r"[-+*/×x÷]"
# An arithmetic expression (two or more numbers joined by operators, parentheses allowed),
# then '=' and the written result.
_EQUATION = re.compile(
    rf"((?:\(\s*)*{_NUM}(?:\s*\)*\s*{_OP}\s*(?:\(\s*)*{_NUM}\s*\)*)+)\s*=\s*(-?\s?{_NUM})(?![\d.,]*\s*[/×*÷]\s*\d)"  # a fraction result (= 1/4) is skipped
)


def check_equations(solution: str) -> list[tuple[str, bool]]:
    """Every ``expression = result`` written in the solution, with whether the result is right.

    A result counts as right when it equals the expression's value rounded to the number of
    decimals written (so ``100/3 = 33.33`` is right, ``7/2 = 3`` is not).
    """
    checked = []
    for expression, written in _EQUATION.findall(solution):
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
