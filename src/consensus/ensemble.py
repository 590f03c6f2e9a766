"""The ensemble: a weighted sum of scorers' energies, the consensus energy of DESIGN.md §1.

    E(x, c) = sum_n w_n * norm(E_n(x, c))

``norm`` is chosen explicitly because scorers speak on different scales (a log-likelihood
in nats, a share of wrong equations in [0, 1], a vote count): summed raw, the one with the
widest range decides alone. The normalisations act across the candidate set of one call.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from consensus.scorer import Scorer

Normalization = Literal["none", "zscore", "rank", "minmax"]
NonFinitePolicy = Literal["raise", "drop"]


class NonFiniteEnergyError(ValueError):
    """A scorer returned NaN or inf for some candidate."""


def normalize(energies: torch.Tensor, mode: Normalization) -> torch.Tensor:
    """Normalise one scorer's energies across the candidate set (order is preserved).

    - ``none``: unchanged.
    - ``zscore``: (E - mean) / std.
    - ``rank``: the rank of each energy scaled to [0, 1], ties share their mean rank.
    - ``minmax``: (E - min) / (max - min) in [0, 1].
    In every mode a constant row becomes all zeros: that scorer has no opinion here.
    """
    e = energies.double()
    if mode == "none":
        return energies
    if e.numel() <= 1 or bool((e == e[0]).all()):
        return torch.zeros_like(energies)  # a scorer that cannot tell the candidates apart has no say
    if mode == "zscore":
        std = e.std(unbiased=False)
        out = (e - e.mean()) / std if std > 0 else torch.zeros_like(e)
    elif mode == "minmax":
        span = e.max() - e.min()
        out = (e - e.min()) / span if span > 0 else torch.zeros_like(e)
    elif mode == "rank":
        # Mean rank of ties: count of strictly smaller + half the count of equal others.
        smaller = (e[None, :] < e[:, None]).sum(1).double()
        equal = (e[None, :] == e[:, None]).sum(1).double() - 1
        out = (smaller + equal / 2) / (e.numel() - 1)
    else:
        raise ValueError(f"unknown normalization {mode!r}; use one of none, zscore, rank, minmax")
    return out.to(energies.dtype)


def weighted_sum(energies: Sequence[torch.Tensor], weights: Sequence[float], mode: Normalization) -> torch.Tensor:
    """Σ_n w_n · normalize(E_n): the ensemble's total over one candidate set, in float64."""
    return sum(w * normalize(e.double(), mode) for w, e in zip(weights, energies))


@dataclass
@dataclass
class EnsembleEnergies:
    """What one ensemble call returns.

    total: the weighted sum of normalised energies, ``[N]``; a dropped candidate has +inf.
    per_scorer: each scorer's raw energies by scorer name, before normalisation.
    seconds: wall time spent in each scorer.
    """

    total: torch.Tensor
    per_scorer: dict[str, torch.Tensor]
    seconds: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "total": [_finite_or_none(v) for v in self.total.tolist()],
            "per_scorer": {k: [_finite_or_none(v) for v in e.tolist()] for k, e in self.per_scorer.items()},
        }


def _finite_or_none(v: float) -> float | None:
    return v if math.isfinite(v) else None


class Ensemble:
    """An ordered list of scorers with weights and an explicit normalisation.

    Args:
        scorers: the scorers; their ``name`` must be unique (it keys the trace).
        weights: one weight per scorer (default 1 each).
        normalization: how each scorer's energies are normalised across candidates before
            they are summed: ``none``, ``zscore``, ``rank`` or ``minmax``.
        nonfinite: what to do when a scorer returns NaN or inf: ``raise`` (default) stops with
            an error naming the scorer; ``drop`` gives that candidate +inf total energy, so no
            selection keeps it, and normalises the others among themselves.
    """

    def __init__(
        self,
        scorers: Sequence[Scorer],
        weights: Sequence[float] | None = None,
        normalization: Normalization = "none",
        nonfinite: NonFinitePolicy = "raise",
    ):
        self.scorers = list(scorers)
        if not self.scorers:
            raise ValueError("an Ensemble needs at least one scorer")
        for s in self.scorers:
            if not isinstance(s, Scorer):
                raise TypeError(f"{s!r} is not a consensus.Scorer; wrap your model in a Scorer subclass")
        names = [s.name for s in self.scorers]
        if len(set(names)) != len(names):
            raise ValueError(f"scorer names must be unique, got {names}; give each scorer a distinct name")
        self.weights = [1.0] * len(self.scorers) if weights is None else [float(w) for w in weights]
        if len(self.weights) != len(self.scorers):
            raise ValueError(f"{len(self.weights)} weights for {len(self.scorers)} scorers; give one weight per scorer")
        if normalization not in ("none", "zscore", "rank", "minmax"):
            raise ValueError(f"unknown normalization {normalization!r}; use one of none, zscore, rank, minmax")
        if nonfinite not in ("raise", "drop"):
            raise ValueError(f"unknown nonfinite policy {nonfinite!r}; use 'raise' or 'drop'")
        self.normalization = normalization
        self.nonfinite = nonfinite

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.scorers]

    @property
    def differentiable(self) -> bool:
        return all(s.differentiable for s in self.scorers)

    def __call__(self, candidates: Sequence[Any], condition: Any) -> EnsembleEnergies:
        n = len(candidates)
        raw, seconds = {}, {}
        for scorer in self.scorers:
            start = time.perf_counter()
            e = scorer.energy(candidates, condition)
            seconds[scorer.name] = time.perf_counter() - start
            if not isinstance(e, torch.Tensor) or e.shape != (n,):
                got = tuple(e.shape) if isinstance(e, torch.Tensor) else type(e).__name__
                raise ValueError(f"scorer {scorer.name} returned {got}; a scorer must return a tensor of shape ({n},)")
            raw[scorer.name] = e
        bad = torch.zeros(n, dtype=torch.bool)
        for name, e in raw.items():
            nonfinite = ~torch.isfinite(e.detach())
            if nonfinite.any():
                if self.nonfinite == "raise":
                    idx = nonfinite.nonzero().flatten().tolist()
                    raise NonFiniteEnergyError(
                        f"scorer {name} returned NaN/inf energy for candidates {idx}; fix the scorer, or build the "
                        "Ensemble with nonfinite='drop' to discard such candidates"
                    )
                bad |= nonfinite
        keep = ~bad
        # Out-of-place index_put keeps the autograd graph, so gradient feedback can use `total`.
        total = torch.full((n,), math.inf, dtype=torch.float64)
        if keep.any():
            kept = weighted_sum([e[keep] for e in raw.values()], self.weights, self.normalization)
            total = total.index_put((keep,), kept)
        return EnsembleEnergies(total=total, per_scorer=raw, seconds=seconds)

    def __repr__(self) -> str:
        parts = ", ".join(f"{w:g}*{s.name}" for w, s in zip(self.weights, self.scorers))
        return f"Ensemble({parts}; normalization={self.normalization}, nonfinite={self.nonfinite})"
