"""Particle resampling (sequential Monte Carlo, as in Feynman–Kac steering).

Draw k survivors with replacement, each with probability

    p(i) = exp(−E_i / τ) / Σ_j exp(−E_j / τ),

the Boltzmann distribution of the consensus energy over the alive candidates. Low temperatures
approach ``TopK``; high ones approach uniform sampling. It needs no gradient, so it works with any
scorer and any generator: whole solutions, reasoning steps, denoising steps (a particle per sample).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from consensus.core.feedback.base import Context, Feedback, alive_energies, require_survivor


@dataclass(frozen=True)
class Resample(Feedback):
    k: int
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if self.k < 1 or not self.temperature > 0:
            raise ValueError(f"Resample needs k >= 1 and temperature > 0, got k={self.k}, temperature={self.temperature}")

    def __call__(self, proposals, energies, context: Context) -> dict[str, Any]:
        alive, total = alive_energies(proposals, energies)
        require_survivor(total)
        probs = torch.softmax(-total.double() / self.temperature, dim=0)
        drawn = torch.multinomial(probs, self.k, replacement=True, generator=context.generator).tolist()
        proposals.survivors = [alive[i] for i in drawn]
        return {"kept": proposals.survivors, "effective_sample_size": float(1 / (probs * probs).sum())}
