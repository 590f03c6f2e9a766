"""Question–solution scorers for math: four experts that look at different things.

- ArithmeticVerifier: are the computations written in the solution right?
- LMLikelihood: how probable is the solution under a language model?
- AnswerAgreement: how many other candidates reach the same final answer? (self-consistency)
- TrainedVerifier: a question–solution classifier trained on templates disjoint from evaluation.

Candidates are solution texts (possibly partial, for step-level feedback); the condition is
the question. Every energy is lower-is-better.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence

import torch

from consensus.math.answers import extract_flexible
from consensus.math.prompt import format_prompt
from consensus.scorer import Scorer

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


class LMLikelihood(Scorer):
    """Energy = minus the mean per-token log-probability of the solution given the question,
    under a causal LM (any CausalLMGenerator). Mean, not sum, so length is not penalised."""

    modality = "text"
    differentiable = False

    def __init__(self, lm, prompt: Callable[[str], str] = format_prompt, name: str = "LMLikelihood"):
        self.lm, self.prompt, self._name = lm, prompt, name

    @property
    def name(self) -> str:
        return self._name

    def energy(self, candidates: Sequence[str], condition: str) -> torch.Tensor:
        prompt = self.prompt(condition)
        logprobs = self.lm.continuation_logprobs([prompt] * len(candidates), list(candidates))
        return torch.tensor([-lp.mean().item() if lp.numel() else 0.0 for lp in logprobs], dtype=torch.float64)


class AnswerAgreement(Scorer):
    """Energy = minus the share of the other candidates that reach the same final answer.

    Self-consistency (majority vote) expressed as a scorer; a candidate with no answer yet
    (a partial solution) has energy 0, no support.
    """

    modality = "text"
    differentiable = False

    def energy(self, candidates: Sequence[str], condition: str) -> torch.Tensor:
        answers = [extract_flexible(c) if "####" in c or "answer is" in c else None for c in candidates]
        votes = Counter(a for a in answers if a is not None)
        others = max(1, len(candidates) - 1)
        return torch.tensor([-(votes[a] - 1) / others if a is not None else 0.0 for a in answers],
                            dtype=torch.float64)
