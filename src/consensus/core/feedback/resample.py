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
    """``k`` survivors drawn by exp(−E/τ) (``k`` None: as many as are alive); with ``every`` > 1, only at
    iterations 0, every, 2·every, ... (a diffusion sampler's particles are resampled every few steps).

    When the condition is a sequence with one entry per candidate (a batch of images, each of its own
    class), energies of different conditions are not comparable, so each condition's candidates are
    resampled among themselves and keep their places and count (``k`` must then be left unset)."""

    k: int | None = None
    temperature: float = 1.0
    every: int = 1

    def __post_init__(self) -> None:
        if (self.k is not None and self.k < 1) or not self.temperature > 0 or self.every < 1:
            raise ValueError(f"Resample needs k >= 1 (or None), temperature > 0 and every >= 1, got k={self.k}, "
                             f"temperature={self.temperature}, every={self.every}")

    def __call__(self, proposals, energies, context: Context) -> dict[str, Any]:
        if context.iteration % self.every:
            return {"resampled": False}
        alive, total = alive_energies(proposals, energies)
        require_survivor(total)
        condition = context.condition
        if isinstance(condition, (list, tuple)) and len(condition) == len(proposals.candidates):
            if self.k is not None:
                raise ValueError("with one condition per candidate, Resample keeps each condition's count; "
                                 "leave k unset")
            groups: dict[Any, list[int]] = {}
            for place, i in enumerate(alive):
                groups.setdefault(condition[i], []).append(place)
            survivors = list(alive)
            for places in groups.values():
                drawn, _ = self._draw(total[places], len(places), context)
                for place, pick in zip(places, drawn):
                    survivors[place] = alive[places[pick]]
            proposals.survivors = survivors
            return {"resampled": True, "kept": survivors, "groups": len(groups)}
        drawn, probs = self._draw(total, self.k or len(alive), context)
        proposals.survivors = [alive[i] for i in drawn]
        return {"resampled": True, "kept": proposals.survivors,
                "effective_sample_size": float(1 / (probs * probs).sum())}

    def _draw(self, energies: torch.Tensor, k: int, context: Context) -> tuple[list[int], torch.Tensor]:
        """``k`` indices into ``energies``, with replacement, by p ∝ exp(−E/τ) (a dropped +inf never), and p."""
        if not torch.isfinite(energies).any():
            raise ValueError("a condition's candidates all have non-finite energy; nothing to resample from")
        probs = torch.softmax(-energies.double() / self.temperature, dim=0)
        return torch.multinomial(probs, k, replacement=True, generator=context.generator).tolist(), probs
