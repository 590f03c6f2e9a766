"""Selection rules of the gradient-free loop: which candidates survive an iteration.

Each rule maps energies ``[N]`` (lower is better, +inf = dropped) to the indices of the
survivors. Best-of-N, beam-style top-k and particle resampling are the three special cases
of DESIGN.md §1; the loop does not know which one it runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Best:
    """Keep the single lowest-energy candidate (ties: the earliest)."""

    def __call__(self, energies: torch.Tensor, generator: torch.Generator) -> list[int]:
        _require_survivor(energies)
        return [int(torch.argmin(energies))]


@dataclass(frozen=True)
class TopK:
    """Keep the k lowest-energy candidates, best first (a beam)."""

    k: int

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"TopK needs k >= 1, got {self.k}")

    def __call__(self, energies: torch.Tensor, generator: torch.Generator) -> list[int]:
        _require_survivor(energies)
        finite = int(torch.isfinite(energies).sum())
        order = torch.argsort(energies, stable=True)
        return order[: min(self.k, finite)].tolist()


@dataclass(frozen=True)
class Resample:
    """Draw k survivors with replacement, with probability proportional to exp(-E / temperature).

    This is particle resampling: the Boltzmann distribution of the consensus energy. Low
    temperatures approach TopK; high ones approach uniform sampling.
    """

    k: int
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if self.k < 1 or not self.temperature > 0:
            raise ValueError(f"Resample needs k >= 1 and temperature > 0, got k={self.k}, temperature={self.temperature}")

    def __call__(self, energies: torch.Tensor, generator: torch.Generator) -> list[int]:
        _require_survivor(energies)
        probs = torch.softmax(-energies.double() / self.temperature, dim=0)
        return torch.multinomial(probs, self.k, replacement=True, generator=generator).tolist()


def _require_survivor(energies: torch.Tensor) -> None:
    if energies.numel() == 0 or not bool(torch.isfinite(energies).any()):
        raise ValueError(
            "no candidate has a finite energy (all were dropped or none was proposed); "
            "check the generator's output and the scorers' NaN policy"
        )

