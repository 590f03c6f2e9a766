"""When the experts have settled: the engine's stopping rules for "the models agree".

Two rules. ``Agreement``: the survivors' answers agree. ``Verified``: the ensemble's choice passes one expert's
check (e.g. every computation in a solution is right).

**Agreement.**
Each survivor has an answer (a final number, a class, a rounded position; None for one that has none yet) and a
vote weight. The share of an answer is the weight of the survivors that reach it over the weight of all of them,
and the survivors agree once the leading answer's share reaches ``share``:

    share(a) = Σ_{i: answer_i = a} w_i / Σ_i w_i,    agreed  ⇔  max_a share(a) ≥ share

Unweighted, w_i = 1: ``share=1.0`` is unanimity, ``share=0.75`` the rule of adaptive self-consistency (Aggarwal et
al., 2023; its_hub: sample 2, 4, 8, … and stop at a 75% majority). Weighted, w_i = exp(−E_i / temperature) with E_i
the ensemble's total energy: read as p(i) ∝ exp(−E_i), the ensemble's own belief over the candidates, share(a) is
the posterior mass of answer a, so the rule stops when the *scorers* (not only the sampler's frequencies) have
settled on one answer. A survivor without an answer counts in the total and for no answer, so it holds agreement
back.

**Verified.** Agreement reads the answers' frequencies, so it stops on an answer the sampler repeats, right or wrong.
When one expert can check a candidate (the arithmetic verifier's energy is the share of wrong computations, 0 when
all are right), a leader that fails the check is known to be wrong somewhere, which is worth more draws, and a
leader that passes is as good as the check can tell. So the run stops once the ensemble's leading candidate (lowest
total energy) has raw energy ≤ ``at_most`` under ``scorer``, the expert that checks: adaptive compute's "sample
until the verifier accepts",

    lead = argmin_i E_total(i),    settled  ⇔  E_scorer(lead) ≤ at_most
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from consensus.core.ensemble import EnsembleEnergies


@dataclass(frozen=True)
class Agreement:
    """The survivors agree once the leading answer holds ``share`` of their (weighted) votes; see the module."""

    answer: Callable[[Any], Hashable | None]
    share: float = 1.0
    weighted: bool = False
    temperature: float = 1.0
    reason = "agreement"  # the run's stop reason when it fires

    def __post_init__(self) -> None:
        if not 0.0 < self.share <= 1.0:
            raise ValueError(f"Agreement.share must be in (0, 1], got {self.share}")
        if not self.temperature > 0:
            raise ValueError(f"Agreement.temperature must be > 0, got {self.temperature}")

    def weights(self, n: int, energies: torch.Tensor | None) -> list[float]:
        """Each candidate's vote: 1 unweighted; exp(−(E − min E) / temperature) weighted (the shift keeps the
        largest weight at 1; a non-finite energy, a candidate the ensemble could not score, gets no vote)."""
        if not self.weighted:
            return [1.0] * n
        if energies is None:
            raise ValueError("a weighted Agreement reads the ensemble's energies; run it with an ensemble")
        e = [float(v) for v in energies]
        finite = [v for v in e if math.isfinite(v)]
        low = min(finite) if finite else 0.0
        return [math.exp(-(v - low) / self.temperature) if math.isfinite(v) else 0.0 for v in e]

    def shares(self, candidates: Sequence[Any], energies: torch.Tensor | None = None) -> dict[Hashable, float]:
        """Each answer's share of the votes (answers of None are left out, their votes still in the total)."""
        weights = self.weights(len(candidates), energies)
        total = sum(weights)
        out: dict[Hashable, float] = {}
        for candidate, weight in zip(candidates, weights):
            key = self.answer(candidate)
            if key is not None:
                out[key] = out.get(key, 0.0) + weight
        return {key: w / total for key, w in out.items()} if total > 0 else {}

    def leader(self, candidates: Sequence[Any], energies: torch.Tensor | None = None) -> Hashable | None:
        """The answer with the largest share (the first reached on ties), None when no candidate has one."""
        shares = self.shares(candidates, energies)
        return max(shares, key=shares.__getitem__) if shares else None

    def reached(self, candidates: Sequence[Any], energies: torch.Tensor | None = None) -> bool:
        """Whether two or more candidates agree by this rule (one candidate agrees with nobody)."""
        if len(candidates) < 2:
            return False
        shares = self.shares(candidates, energies)
        return bool(shares) and max(shares.values()) >= self.share - 1e-12

    def check(self, scorers: Sequence[str] | None) -> None:
        """Refuse a weighted rule where the run has no ensemble (``scorers`` None) to weigh the votes."""
        if self.weighted and scorers is None:
            raise ValueError("a weighted Agreement reads the ensemble's energies; pass an ensemble, or weighted=False")

    def settled(self, candidates: Sequence[Any], energies: EnsembleEnergies | None) -> bool:
        """The engine's test: ``reached`` on the survivors (``candidates``) and their ensemble energies."""
        return self.reached(candidates, None if energies is None else energies.total.detach())


@dataclass(frozen=True)
class Verified:
    """The ensemble's leading candidate passes ``scorer``'s check: its raw energy is at most ``at_most``; see the
    module."""

    scorer: str
    at_most: float = 0.0
    reason = "verified"

    def check(self, scorers: Sequence[str] | None) -> None:
        """Refuse a run whose ensemble lacks the checking scorer, naming the ones it has."""
        if scorers is None or self.scorer not in scorers:
            has = "no ensemble" if scorers is None else "an ensemble of only " + ", ".join(scorers)
            raise ValueError(f"Verified({self.scorer!r}) reads that scorer's energies, and the run has {has}; add the "
                             "scorer to the ensemble, or name one it has")

    def settled(self, candidates: Sequence[Any], energies: EnsembleEnergies | None) -> bool:
        """Whether the candidate of lowest total energy among ``candidates`` has passed the check."""
        if energies is None or len(candidates) == 0:
            return False
        lead = int(torch.argmin(energies.total.detach()))
        return bool(float(energies.per_scorer[self.scorer][lead]) <= self.at_most)


StopRule = Agreement | Verified  # what ``run_consensus(agreement=...)`` takes
