"""LLM-as-judge: any ``TextGenerator`` (torch, llama.cpp, an OpenAI-compatible server) asked whether a candidate
is right.

The judge reads a task's template filled with the condition and the candidate and ends at "Answer:". Its energy
is −log p(yes), with p(yes) the judge's own probability of the yes word against the no word (the two
continuations' log-probabilities, renormalised over the pair, so tokens the judge might say instead do not count):

    p(yes) = exp(ℓ_yes) / (exp(ℓ_yes) + exp(ℓ_no)),    E = −log p(yes) = softplus(ℓ_no − ℓ_yes)

A backend that gives no log-probabilities (a chat-only server) is asked for its greedy answer instead, and the
answer is parsed: yes → p = 0.99, no → p = 0.01, anything else 0.5; the judge warns once when it falls back, since
parsed verdicts tie far more often than probabilities do. All candidates of a call go to the judge in one batch.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch

from consensus.core.scorer import Scorer
from consensus.generators.text.openai_server import OpenAIServerError
from consensus.generators.text.protocol import TextGenerator

JUDGE_TEMPLATES = {
    "math": ("Here is a math word problem and a proposed solution.\n\nProblem: {condition}\n\nProposed solution:\n"
             "{candidate}\n\nIs the proposed solution correct, with every step and the final answer right? "
             "Answer Yes or No.\nAnswer:"),
}
# What a parsed verdict counts as: sure but not certain, so a parsed energy stays finite.
PARSED = {"yes": 0.99, "no": 0.01, None: 0.5}


class LLMJudge(Scorer):
    """A judge LM's −log p(yes) for each candidate; see the module for the formula and the fallback."""

    modality = "text"
    differentiable = False

    def __init__(self, judge: TextGenerator, template: str = JUDGE_TEMPLATES["math"], yes: str = " Yes",
                 no: str = " No", name: str = "LLMJudge"):
        if "{condition}" not in template or "{candidate}" not in template:
            raise ValueError("a judge template needs the {condition} and the {candidate} to judge")
        if not yes.strip() or not no.strip() or yes.strip().lower() == no.strip().lower():
            raise ValueError(f"the judge's yes and no words must be two different words, got {yes!r} and {no!r}")
        self.judge, self.template, self.yes, self.no, self._name = judge, template, yes, no, name
        self.parsed = False  # whether the last call fell back to parsing answers

    @property
    def name(self) -> str:
        return self._name

    def energy(self, candidates: Sequence[str], condition: str) -> torch.Tensor:
        prompts = [self.template.format(condition=condition, candidate=c) for c in candidates]
        try:
            lp = self.judge.continuation_logprobs([*prompts, *prompts], [self.yes] * len(prompts) +
                                                  [self.no] * len(prompts))
        except (OpenAIServerError, NotImplementedError) as error:
            return self._parsed(prompts, error)
        self.parsed = False
        totals = torch.tensor([float(t.sum()) for t in lp], dtype=torch.float64)
        yes, no = totals[:len(prompts)], totals[len(prompts):]
        return torch.nn.functional.softplus(no - yes)

    def _parsed(self, prompts: Sequence[str], error: Exception) -> torch.Tensor:
        if not self.parsed:
            warnings.warn(f"{self.name}: the judge gives no log-probabilities ({error}); parsing its greedy answers "
                          f"instead (yes {PARSED['yes']}, no {PARSED['no']}, else {PARSED[None]})", stacklevel=3)
        self.parsed = True
        answers = self.judge.sample(list(prompts), 1, max_new_tokens=4, temperature=0.0)
        p = torch.tensor([PARSED[self.verdict(a.text)] for [a] in answers], dtype=torch.float64)
        return -p.log()

    def verdict(self, answer: str) -> str | None:
        """``yes``, ``no`` or None: the first word of the judge's answer, read as the yes or the no word."""
        words = answer.strip().split()
        first = words[0].strip(".,!:;").lower() if words else ""
        return {self.yes.strip().lower(): "yes", self.no.strip().lower(): "no"}.get(first)
