"""LMLikelihood: how probable is a candidate text under a language model?"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from consensus.core.scorer import Scorer
from consensus.generators.text.protocol import TextGenerator


class LMLikelihood(Scorer):
    """Energy = minus the mean per-token log-probability of the solution given the question,
    under a text generator (anything with ``continuation_logprobs``, such as CausalLMGenerator). Mean, not
    sum, so length is not penalised. ``prompt`` turns the condition into the text the solution continues
    (the task's prompt format; by default the condition itself)."""

    modality = "text"
    differentiable = False

    def __init__(self, lm: TextGenerator, prompt: Callable[[str], str] = lambda condition: condition,
                 name: str = "LMLikelihood"):
        self.lm, self.prompt, self._name = lm, prompt, name

    @property
    def name(self) -> str:
        return self._name

    def energy(self, candidates: Sequence[str], condition: str) -> torch.Tensor:
        [energies] = self.energy_items([candidates], [condition])
        return energies

    def energy_items(self, candidate_sets: Sequence[Sequence[str]], conditions: Sequence[str],
                     noise_levels: Sequence[None] | None = None) -> list[torch.Tensor]:
        """Every item's candidates in one ``continuation_logprobs`` call, so those it must score afresh share its
        batches."""
        prompts = [self.prompt(condition) for condition, cs in zip(conditions, candidate_sets) for _ in cs]
        logprobs = self.lm.continuation_logprobs(prompts, [c for cs in candidate_sets for c in cs])
        energies = torch.tensor([-lp.mean().item() if lp.numel() else 0.0 for lp in logprobs], dtype=torch.float64)
        return list(energies.split([len(cs) for cs in candidate_sets]))
