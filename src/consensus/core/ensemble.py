"""The ensemble: the scorers' energies combined into the consensus energy the method minimises.

    E(x, c) = sum_n w_n * norm(E_n(x, c))

``norm`` is chosen explicitly because scorers speak on different scales (a log-likelihood
in nats, a share of wrong equations in [0, 1], a vote count): summed raw, the one with the
widest range decides alone. The normalisations act across the candidate set of one item, also where several
items are scored in one call per scorer (``Ensemble.score_items``). Beside the weighted sum, two conservative
combinations (``combine``) make selection robust to a scorer that is fooled: the worst case and the
uncertainty-weighted mean.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from consensus.core.scorer import NoiseLevel, Scorer

Normalization = Literal["none", "zscore", "rank", "minmax"]
Combination = Literal["sum", "worst", "uncertainty"]
COMBINATIONS = ("sum", "worst", "uncertainty")
NonFinitePolicy = Literal["raise", "drop"]
LatePolicy = Literal["raise", "skip"]


class NonFiniteEnergyError(ValueError):
    """A scorer returned NaN or inf for some candidate."""


class ScorerError(RuntimeError):
    """A scorer raised: the error names the scorer (and, from the engine, the item)."""


class _Late(Exception):
    """A scorer passed the ensemble's deadline."""


class NonFiniteGradientError(FloatingPointError):
    """A scorer's gradient held NaN or inf."""


class NonDifferentiableScorerError(TypeError):
    """Gradient feedback was asked of a scorer whose energy has no gradient."""


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


def combine(energies: Sequence[torch.Tensor], weights: Sequence[float], mode: Normalization,
            combination: Combination = "sum", spread: float = 1.0) -> torch.Tensor:
    """The ensemble's total over one candidate set from each scorer's energies ẑ_n = normalize(E_n), in float64.

    - ``sum``: Σ_n w_n ẑ_n, the product of experts p(x) ∝ Π_n exp(−w_n ẑ_n).
    - ``worst``: max over the scorers with w_n > 0 of ẑ_n. A candidate is as good as its harshest judge, so
      choosing the lowest maximises the worst normalised reward across scorers (Coste et al., ICLR 2024,
      worst-case optimisation): a candidate that fools one scorer keeps the others' verdict.
    - ``uncertainty``: μ + λ·σ with μ = Σ w_n ẑ_n / Σ w_n and σ² = Σ w_n (ẑ_n − μ)² / Σ w_n, λ = ``spread``:
      the weighted mean (at λ = 0 the sum's choice) penalised where the scorers disagree (Coste et al.'s
      uncertainty-weighted optimisation, r̄ − λ·Var, with the spread in the energies' own units).
    Both conservative forms compare scorers with one another, so they need a normalisation that puts them on one
    scale (``Ensemble`` refuses them with ``none``).
    """
    if combination == "sum":
        return weighted_sum(energies, weights, mode)
    rows = [normalize(e.double(), mode) for e, w in zip(energies, weights) if w > 0]
    if not rows:  # no scorer of positive weight answered (the others were late): no opinion
        return torch.zeros_like(energies[0], dtype=torch.float64)
    normed = torch.stack(rows)
    if combination == "worst":
        return normed.max(0).values
    w = torch.tensor([w for w in weights if w > 0], dtype=torch.float64)[:, None]
    mean = (w * normed).sum(0) / w.sum()
    return mean + spread * ((w * (normed - mean) ** 2).sum(0) / w.sum()).sqrt()


def check_combination(combination: str, normalization: str, spread: float) -> None:
    """Refuse a combination the ensemble cannot compute: an unknown one, a conservative one without a normalisation
    (it compares scorers with one another), a spread that is not a finite number >= 0."""
    if combination not in COMBINATIONS:
        raise ValueError(f"unknown combination {combination!r}; use one of {', '.join(COMBINATIONS)}")
    if combination != "sum" and normalization == "none":
        raise ValueError(f"combination={combination!r} compares the scorers' energies with one another, which "
                         "needs them on one scale: use normalization zscore, rank or minmax")
    if not (math.isfinite(spread) and spread >= 0):
        raise ValueError(f"spread must be a finite number >= 0, got {spread}")


def combine_gradients(gradients: Sequence[torch.Tensor], weights: Sequence[float], balance: bool) -> torch.Tensor:
    """ĝ = Σ w_n g_n / rms(g_n) / Σ w_n per sample (``balance``), else Σ w_n g_n (see ``Ensemble.gradient``)."""
    if not balance:
        return sum(w * g for w, g in zip(weights, gradients))
    total = sum(weights)
    if total <= 0:
        raise ValueError(f"balanced gradients need a positive sum of ensemble weights, got {list(weights)}")
    dims = tuple(range(1, gradients[0].ndim))
    # A sample whose gradient is exactly zero (a saturated scorer) contributes nothing, not NaN.
    unit = [g / g.pow(2).mean(dims, keepdim=True).sqrt().clamp_min(1e-12) for g in gradients]
    return sum(w * u for w, u in zip(weights, unit)) / total


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
        deadline: seconds one scorer may take on one item's candidates (None: no limit). A scorer past it is
            ``late``: ``raise`` stops with an error naming it; ``skip`` leaves it out of that call's
            total (and of ``per_scorer``), so one hung expert cannot stall a run. (Python cannot stop
            the hung call; it is left running in a background thread.)
        combination: how the normalised energies make the total (``combine``): ``sum`` (default), ``worst``
            or ``uncertainty`` (mean + ``spread`` · the scorers' spread).
    """

    def __init__(
        self,
        scorers: Sequence[Scorer],
        weights: Sequence[float] | None = None,
        normalization: Normalization = "none",
        nonfinite: NonFinitePolicy = "raise",
        deadline: float | None = None,
        late: LatePolicy = "raise",
        combination: Combination = "sum",
        spread: float = 1.0,
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
        if deadline is not None and not deadline > 0:
            raise ValueError(f"deadline must be a number of seconds > 0 (or None), got {deadline}")
        if late not in ("raise", "skip"):
            raise ValueError(f"unknown late policy {late!r}; use 'raise' or 'skip'")
        check_combination(combination, normalization, spread)
        if combination != "sum" and not any(w > 0 for w in self.weights):
            raise ValueError(f"combination={combination!r} reads the scorers of positive weight; give one")
        self.combination, self.spread = combination, float(spread)
        self.normalization = normalization
        self.nonfinite = nonfinite
        self.deadline, self.late = deadline, late

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.scorers]

    @property
    def differentiable(self) -> bool:
        return all(s.differentiable for s in self.scorers)

    @property
    def options(self) -> dict[str, Any]:
        """Its keywords beside the scorers and weights: how it normalises, combines, and treats NaN and late scorers."""
        return {"normalization": self.normalization, "nonfinite": self.nonfinite, "deadline": self.deadline,
                "late": self.late, "combination": self.combination, "spread": self.spread}

    def extended(self, scorers: Sequence[Scorer], weights: Sequence[float]) -> Ensemble:
        """This ensemble with more scorers (each with its weight), everything else the same."""
        return Ensemble([*self.scorers, *scorers], [*self.weights, *weights], **self.options)

    def reweighted(self, weights: Sequence[float]) -> Ensemble:
        """This ensemble with other weights (fitted ones, say), everything else the same."""
        return Ensemble(self.scorers, weights, **self.options)

    @classmethod
    def log_linear_pool(cls, scorers: Sequence[Scorer], scales: Sequence[float], **options: Any) -> Ensemble:
        """The log-linear pool (geometric mean) of scorers whose energies are ``1 − cos`` with logit scales s_n.

        Each scorer n is its own contrastive model over the candidates, p_n(i) ∝ exp(s_n cos_n(i)).
        Weighting it by s_n / N with no normalisation makes, at τ = 1,

            softmax(−E) = softmax(−Σ_n (s_n / N)(1 − cos_n)) ∝ Π_n p_n^(1/N),

        the geometric mean of the models' own distributions: as sure of itself as one model where
        they agree, and less where they do not. ``options``: the other keywords of ``Ensemble`` (a normalisation
        other than none makes it another pool).
        """
        if len(scales) != len(scorers):
            raise ValueError(f"{len(scales)} logit scales for {len(scorers)} scorers; give one scale per scorer")
        return cls(scorers, weights=[s / len(scorers) for s in scales], **{"normalization": "none", **options})

    def gradient(self, energies: EnsembleEnergies, wrt: torch.Tensor, balance: bool = True,
                 where: str = "") -> torch.Tensor:
        """The combined gradient ĝ of the per-sample energies with respect to ``wrt`` ``[N, ...]``.

        Each scorer is differentiated on its own, g_n = ∇ E_n, then (``balance``) rescaled per sample
        to unit RMS before the weighted mean, ĝ = Σ w_n g_n/rms(g_n) / Σ w_n, so a scorer in nats and one
        in cosine units push equally and only the weights decide; without balance, ĝ = Σ w_n g_n, the
        gradient of the weighted sum. Across-candidate normalisation cannot hold here (one sample's
        gradient would depend on the others in the batch), so it is refused. A NaN/inf energy or
        gradient raises (``nonfinite='raise'``) or leaves that sample without a push (``'drop'``).
        """
        if self.normalization != "none":
            raise ValueError(
                f"gradient feedback needs normalization='none', not {self.normalization!r}: normalising across "
                "the candidates would make each sample's gradient depend on the others; balance=True rescales "
                "each scorer's gradient instead"
            )
        names = list(energies.per_scorer)
        dropped = ~torch.isfinite(energies.total.detach())
        gradients = []
        for i, name in enumerate(names):
            energy = energies.per_scorer[name]
            if not energy.requires_grad:
                raise NonDifferentiableScorerError(
                    f"scorer {name} returned energies with no gradient; gradient feedback needs differentiable "
                    "scorers (differentiable=True that keep the autograd graph)"
                )
            finite = torch.isfinite(energy.detach())
            summed = energy.sum() if bool(finite.all()) else energy[finite].sum()
            (g,) = torch.autograd.grad(summed, wrt, retain_graph=i < len(names) - 1)
            bad = ~torch.isfinite(g).flatten(1).all(1)
            if bad.any() and self.nonfinite == "raise":
                raise NonFiniteGradientError(
                    f"scorer {name} gave a NaN/inf gradient{where}; lower the guidance scale, or check that the "
                    "scorer is finite for its inputs (e.g. a log of a zero probability)"
                )
            dropped |= bad
            gradients.append(torch.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0))
        direction = combine_gradients(gradients, self._weights_of(names), balance)
        keep = (~dropped).to(direction.dtype).view(-1, *[1] * (direction.ndim - 1))
        return direction * keep if dropped.any() else direction

    def __call__(self, candidates: Sequence[Any], condition: Any,
                 noise_level: NoiseLevel | None = None) -> EnsembleEnergies:
        """Every scorer's energies and their weighted total; ``noise_level`` goes to the scorers that read it."""
        [energies] = self.score_items([candidates], [condition], [noise_level])
        return energies

    def score_items(self, candidate_sets: Sequence[Sequence[Any]], conditions: Sequence[Any],
                    noise_levels: Sequence[NoiseLevel | None] | None = None) -> list[EnsembleEnergies]:
        """Several items scored in one call per scorer (``Scorer.energy_items``): item i gets what
        ``self(candidate_sets[i], conditions[i], noise_levels[i])`` gives, normalised and totalled among its own
        candidates. A scorer's seconds are shared among the items by their numbers of candidates; its deadline
        grows with the number of items."""
        if len(candidate_sets) != len(conditions) or (noise_levels is not None
                                                      and len(noise_levels) != len(conditions)):
            raise ValueError(f"give one condition (and noise level) per candidate set: {len(candidate_sets)} sets, "
                             f"{len(conditions)} conditions")
        levels = list(noise_levels) if noise_levels is not None else [None] * len(conditions)
        sizes = [len(c) for c in candidate_sets]
        n = sum(sizes)
        raw: dict[str, list[torch.Tensor]] = {}
        seconds: dict[str, float] = {}
        # Remote scorers first: their calls run while the local ones below do.
        started = {s.name: (time.perf_counter(), [self._submit(s, c, x) for c, x in zip(candidate_sets, conditions)])
                   for s in self.scorers if s.runs_elsewhere}
        for scorer in self.scorers:
            start = time.perf_counter()
            try:
                if scorer.name in started:
                    start, calls = started[scorer.name]
                    energies = [self._collect(scorer, call) for call in calls]
                else:
                    energies = self._energy(scorer, candidate_sets, conditions, levels)
            except ValueError as error:  # a bad input the scorer explains: keep its type, add its name
                raise ValueError(f"scorer {scorer.name}: {error}") from error
            except _Late:
                if self.late == "raise":
                    raise ScorerError(f"scorer {scorer.name} took more than its deadline of {self.deadline} s on "
                                      f"{n} candidates; raise the deadline, or build the Ensemble with late='skip'"
                                      ) from None
                continue
            except Exception as error:
                raise ScorerError(f"scorer {scorer.name} failed on {n} candidates: {type(error).__name__}: "
                                  f"{error}") from error
            seconds[scorer.name] = time.perf_counter() - start
            if len(energies) != len(sizes):
                raise ValueError(f"scorer {scorer.name} returned {len(energies)} energy tensors for {len(sizes)} "
                                 "items; energy_items must return one per item")
            for e, size in zip(energies, sizes):
                if not isinstance(e, torch.Tensor) or e.shape != (size,):
                    got = tuple(e.shape) if isinstance(e, torch.Tensor) else type(e).__name__
                    raise ValueError(f"scorer {scorer.name} returned {got}; a scorer must return a tensor of shape "
                                     f"({size},)")
            raw[scorer.name] = energies
        if not raw:
            raise ScorerError(f"every scorer passed its deadline of {self.deadline} s; nothing scored the candidates")
        return [self._totalled({name: e[i] for name, e in raw.items()},
                               {name: sec * size / max(n, 1) for name, sec in seconds.items()})
                for i, size in enumerate(sizes)]

    def _totalled(self, raw: dict[str, torch.Tensor], seconds: dict[str, float]) -> EnsembleEnergies:
        """One item's energies with their weighted total, after the non-finite policy."""
        n = len(next(iter(raw.values())))
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
            kept = combine([e[keep] for e in raw.values()], self._weights_of(raw), self.normalization,
                           self.combination, self.spread)
            total = total.index_put((keep,), kept)
        return EnsembleEnergies(total=total, per_scorer=raw, seconds=seconds)

    def _weights_of(self, names: Any) -> list[float]:
        """The weights of the scorers named (those that answered in time), in that order."""
        weight = dict(zip(self.names, self.weights))
        return [weight[name] for name in names]

    @staticmethod
    def _submit(scorer: Scorer, candidates: Sequence[Any], condition: Any) -> Any:
        try:
            return scorer.submit(candidates, condition)
        except Exception as error:
            raise ScorerError(f"scorer {scorer.name} could not start: {type(error).__name__}: {error}") from error

    def _collect(self, scorer: Scorer, call: Any) -> torch.Tensor:
        """A remote scorer's energies (raises ``_Late`` past the deadline)."""
        try:
            return scorer.collect(call, timeout=self.deadline)
        except TimeoutError:
            raise _Late from None

    def _energy(self, scorer: Scorer, candidate_sets: Sequence[Sequence[Any]], conditions: Sequence[Any],
                levels: Sequence[NoiseLevel | None]) -> list[torch.Tensor]:
        """``scorer.energy_items`` (at the noise levels, for a scorer that reads them) within the deadline, per item
        (raises ``_Late`` past it)."""
        if self.deadline is None:
            return scorer.energy_items(candidate_sets, conditions, levels)
        outcome: dict[str, Any] = {}
        grad = torch.is_grad_enabled()  # grad mode is per thread: carry the caller's over

        def call() -> None:
            try:
                with torch.set_grad_enabled(grad):
                    outcome["energy"] = scorer.energy_items(candidate_sets, conditions, levels)
            except BaseException as error:  # noqa: BLE001 - re-raised in the caller's thread
                outcome["error"] = error

        worker = threading.Thread(target=call, name=f"scorer {scorer.name}", daemon=True)
        worker.start()
        worker.join(self.deadline * len(conditions))
        if worker.is_alive():
            raise _Late
        if "error" in outcome:
            raise outcome["error"]
        return outcome["energy"]

    def __repr__(self) -> str:
        parts = ", ".join(f"{w:g}*{s.name}" for w, s in zip(self.weights, self.scorers))
        combination = "" if self.combination == "sum" else f", combination={self.combination}" + (
            f", spread={self.spread:g}" if self.combination == "uncertainty" else "")
        return f"Ensemble({parts}; normalization={self.normalization}, nonfinite={self.nonfinite}{combination})"
