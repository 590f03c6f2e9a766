"""The engine's steps over a text generator: whole solutions, or one line of reasoning at a time.

- ``SolutionSteps``: N full solutions in one batch sharing one prefill; with ``Best()`` this is
  best-of-N (one iteration).
- ``LineSteps``: a solution is built one line at a time. Each iteration extends every surviving
  partial solution by ``n / len(survivors)`` sampled next lines; the ensemble scores the extended
  partial solutions and ``TopK(k)`` keeps a beam, which the next iteration extends. A partial
  solution is complete once ``is_complete`` says so (an answer line) or the LM ends it.

At equal N the two spend about the same generator tokens (N proposals of every line either way).
Both depend only on the ``TextGenerator`` protocol; the task gives the prompt format.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from consensus.core.engine import Proposals
from consensus.generators.text.protocol import Completion, TextGenerator, join


@dataclass
class Sampling:
    """How the generator samples: defaults follow common practice for best-of-N on GSM8K."""

    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 64
    max_new_tokens: int = 256


@dataclass
class SolutionSteps:
    """N full continuations of ``prompt(condition)`` per call, sharing one prefill of the prompt."""

    lm: TextGenerator
    n: int
    prompt: Callable[[Any], str]
    sampling: Sampling = field(default_factory=Sampling)
    stop: Sequence[str] = ()

    def __call__(self, condition: Any, population: Sequence[str] | None, generator: torch.Generator) -> Proposals:
        return self.propose(condition, self.n, generator)

    def propose(self, condition: Any, n: int, generator: torch.Generator) -> Proposals:
        """``n`` fresh solutions as proposals (``consensus.core.rounds.Rounds`` draws its rounds this way)."""
        completions = self.completions(condition, n, generator)
        return Proposals([c.text for c in completions], tokens=sum(c.tokens for c in completions))

    def completions(self, condition: Any, n: int, generator: torch.Generator) -> list[Completion]:
        """``n`` fresh solutions with what each cost (its tokens) and how it ended."""
        s = self.sampling
        [completions] = self.lm.sample([self.prompt(condition)], n, max_new_tokens=s.max_new_tokens,
                                       temperature=s.temperature, top_p=s.top_p, top_k=s.top_k, stop=self.stop,
                                       generator=generator)
        return completions


@dataclass
class LineSteps:
    """Extends each surviving partial solution by one line, ``n`` proposals in all.

    Survivors that are already complete are proposed again unchanged (at no token cost), so they
    compete with the extended ones. A line cut by ``max_step_tokens`` stays partial and is continued
    in the next iteration. A line that starts with ``new_item`` (the few-shot format's next question)
    means the LM considers the solution over.
    """

    lm: TextGenerator
    n: int
    prompt: Callable[[Any], str]
    is_complete: Callable[[str], bool]
    sampling: Sampling = field(default_factory=Sampling)
    stop: Sequence[str] = ()
    new_item: str | None = None
    max_step_tokens: int = 64
    # Partial solutions the LM itself ended (end-of-sequence, or it began a new item) without an
    # answer line: they are final, and never extended again.
    ended: set[str] = field(default_factory=set)

    def __call__(self, condition: Any, population: Sequence[str] | None, generator: torch.Generator) -> Proposals:
        parents = list(dict.fromkeys(population)) if population else [""]  # resampled duplicates are extended once
        done = [p for p in parents if self.is_complete(p) or p in self.ended]
        growing = [p for p in parents if p not in done]
        candidates, complete, tokens = list(done), [True] * len(done), 0
        if growing:
            per_parent = max(1, self.n // len(growing))
            prompt = self.prompt(condition)
            s = self.sampling
            batches = self.lm.sample([prompt + p for p in growing], per_parent, max_new_tokens=self.max_step_tokens,
                                     temperature=s.temperature, top_p=s.top_p, top_k=s.top_k,
                                     stop=("\n", *self.stop), generator=generator)
            for parent, completions in zip(growing, batches):
                for c in completions:
                    tokens += c.tokens
                    new_item = self.new_item is not None and c.text.lstrip().startswith(self.new_item)
                    line = c.text + "\n" if c.ended == "stop" else c.text
                    if c.with_stop == line:  # the line with its newline, as sampled (log-probabilities kept)
                        line = c.with_stop
                    text = parent if new_item else join(parent, line)
                    if new_item or c.ended == "eos":
                        self.ended.add(text)
                    candidates.append(text)
                    complete.append(self.is_complete(text) or text in self.ended)
        return Proposals(candidates, tokens=tokens, complete=complete)
