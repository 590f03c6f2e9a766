"""The two feedback forms for math, as proposers for ``consensus.run_consensus``.

- Solution level: propose N full solutions in one batch; the ensemble picks one (one iteration).
- Step level: a solution is built one line at a time. Each iteration extends every surviving
  partial solution by ``n / len(survivors)`` sampled next lines; the ensemble scores the
  extended partial solutions and keeps the best k (``TopK``), which the next iteration extends.
  A partial solution is complete once it writes its ``#### N`` line or the LM ends it.

At equal N the two spend about the same generator tokens (N proposals of every line either
way); the benchmark reports the tokens each actually spent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from consensus.generators import CausalLMGenerator
from consensus.loop import Proposals
from consensus.math.data import Problem
from consensus.math.prompt import STOP, format_prompt


@dataclass
class Sampling:
    """How the generator samples: defaults follow common practice for best-of-N on GSM8K."""

    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 64
    max_new_tokens: int = 256


@dataclass
class SolutionProposer:
    """N full solutions per call, sharing one prefill of the prompt."""

    lm: CausalLMGenerator
    n: int
    sampling: Sampling = field(default_factory=Sampling)
    exemplars: Sequence[Problem] = ()

    def __call__(self, question: str, parents: Sequence[str] | None, generator: torch.Generator) -> Proposals:
        s = self.sampling
        completions = self.lm.sample([format_prompt(question, self.exemplars)], self.n, max_new_tokens=s.max_new_tokens,
                                     temperature=s.temperature, top_p=s.top_p, top_k=s.top_k, stop=STOP,
                                     generator=generator)[0]
        return Proposals([c.text for c in completions], tokens=sum(c.tokens for c in completions))


def is_complete(partial: str) -> bool:
    """A partial solution is complete once its last line is the ``#### N`` answer line."""
    lines = partial.rstrip("\n").split("\n")
    return lines[-1].lstrip().startswith("####")


@dataclass
class StepProposer:
    """Extends each surviving partial solution by one line, ``n`` proposals in all.

    Survivors that are already complete are proposed again unchanged (at no token cost), so
    they compete with the extended ones. A line cut by ``max_step_tokens`` stays partial and
    is continued in the next iteration.
    """

    lm: CausalLMGenerator
    n: int
    sampling: Sampling = field(default_factory=Sampling)
    exemplars: Sequence[Problem] = ()
    max_step_tokens: int = 64
    # Partial solutions the LM itself ended (end-of-sequence, or it began a new question)
    # without an answer line: they are final, and never extended again.
    ended: set[str] = field(default_factory=set)

    def __call__(self, question: str, parents: Sequence[str] | None, generator: torch.Generator) -> Proposals:
        parents = list(dict.fromkeys(parents)) if parents else [""]  # resampled duplicates are extended once
        done = [p for p in parents if is_complete(p) or p in self.ended]
        growing = [p for p in parents if p not in done]
        candidates, complete, tokens = list(done), [True] * len(done), 0
        if growing:
            per_parent = max(1, self.n // len(growing))
            prompt = format_prompt(question, self.exemplars)
            s = self.sampling
            batches = self.lm.sample([prompt + p for p in growing], per_parent, max_new_tokens=self.max_step_tokens,
                                     temperature=s.temperature, top_p=s.top_p, top_k=s.top_k,
                                     stop=("\n",) + STOP, generator=generator)
            for parent, completions in zip(growing, batches):
                for c in completions:
                    tokens += c.tokens
                    # A line that starts the next question means the LM considers the solution over.
                    new_question = c.text.lstrip().startswith("Question:")
                    text = parent if new_question else parent + c.text + ("\n" if c.ended == "stop" else "")
                    if new_question or c.ended == "eos":
                        self.ended.add(text)
                    candidates.append(text)
                    complete.append(is_complete(text) or text in self.ended)
        return Proposals(candidates, tokens=tokens, complete=complete)
