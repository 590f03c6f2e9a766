"""Ensemble weights: fitted on labelled development examples (``fit_weights``), or estimated from
how the scorers agree on unlabelled ones (``fit_unlabelled_weights``); never on the examples they
are used on.

Equal weights give every expert the same say; when one expert is much better than the others
(an arithmetic verifier on one-step sums), the others outvote it. Given development problems
with N candidates each and which candidates are right, the weights are the ones under which
the ensemble's own energy best finds the right candidates.

Read the ensemble energy E_w(x) = Σ_n w_n · norm(E_n(x)) of one problem's candidates as a
Boltzmann distribution, p_w(x) = exp(−E_w(x)) / Σ_x' exp(−E_w(x')). Selection takes argmin E_w,
the most probable candidate. The weights maximise

    Σ_problems log Σ_{x right} p_w(x)  −  λ Σ_n w_n²,

the log-probability that a draw from p_w is right: a smooth surrogate of best-of-N accuracy
(its sharp limit, w → ∞ along a direction, is exactly "argmin E_w is right"). Problems whose
candidates are all right or all wrong carry no information about the weights and are skipped;
w_n ≥ 0 (w = softplus(θ)) keeps every expert's "lower is better"; the L2 term keeps w finite
when the development set is separable. Selection is invariant to the scale of w, so the weights
are returned rescaled to mean 1 (equal weights are all 1).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from consensus.core.ensemble import Normalization, normalize, weighted_sum
from consensus.core.files import write_atomic


@dataclass(frozen=True)
class DevSet:
    """One development problem: each scorer's raw energies of its candidates, and which are right."""

    energies: Mapping[str, Sequence[float]]
    right: Sequence[bool]


def fit_weights(problems: Sequence[DevSet], names: Sequence[str], normalization: Normalization = "zscore",
                l2: float = 1e-3, steps: int = 200) -> list[float]:
    """Weights for the scorers ``names`` (in that order) fitted on development problems.

    Raises ValueError when no problem has both a right and a wrong candidate: such a set says
    nothing about which expert to trust (use more or harder development problems).
    """
    features, masks = [], []
    for p in problems:
        right = torch.tensor([bool(r) for r in p.right])
        if right.all() or not right.any():
            continue
        missing = [n for n in names if n not in p.energies]
        if missing:
            raise ValueError(f"a development problem has no energies for {missing}; score it with every scorer")
        raw = {n: torch.tensor([math.nan if e is None else e for e in p.energies[n]], dtype=torch.float64)
               for n in names}  # a stored trace writes a non-finite energy as None
        bad = [n for n, e in raw.items() if not torch.isfinite(e).all()]
        if bad:
            raise ValueError(f"a development problem has NaN/inf energies from {bad}; drop such candidates "
                             "(or problems) before fitting")
        features.append(torch.stack([normalize(raw[n], normalization) for n in names], dim=1))  # [N, scorers]
        masks.append(right)
    if not features:
        raise ValueError("no development problem has both a right and a wrong candidate, so nothing tells the "
                         "experts apart; use more (or harder) development problems")
    theta = torch.zeros(len(names), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([theta], max_iter=steps, line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        optimizer.zero_grad()
        w = torch.nn.functional.softplus(theta)
        # The ensemble's own combiner on the already-normalised features, so the fit sees the energy it selects by.
        energies = [weighted_sum(f.unbind(1), w.unbind(0), "none") for f in features]
        nll = sum(-(torch.logsumexp(-e[m], 0) - torch.logsumexp(-e, 0)) for e, m in zip(energies, masks))
        total = nll / len(features) + l2 * (w * w).sum()
        total.backward()
        return total

    optimizer.step(loss)
    w = torch.nn.functional.softplus(theta.detach())
    return (w * len(names) / w.sum()).tolist()


def fit_unlabelled_weights(problems: Sequence[Mapping[str, Sequence[float]]], names: Sequence[str],
                           normalization: Normalization = "zscore") -> list[float]:
    """Weights for the scorers ``names`` from their energies alone: no labels (the "wisdom of crowds").

    Each problem's energies are normalised across its candidates as the ensemble does, so each
    scorer's e_n has mean 0 and variance 1 within a problem. Model (a one-factor model, the
    continuous analogue of Dawid–Skene's conditionally independent annotators): a latent
    rightness y of the candidate drives every scorer,

        e_n = −a_n (y − ȳ) + ε_n,   ε_n independent across scorers given y, variance σ_n².

    Then for two different scorers Cov(e_n, e_m) = r_n r_m with r_n = a_n·sd(y), the correlation of
    scorer n with the latent rightness: the off-diagonal of the scorers' covariance is rank one, and
    its factor is each scorer's reliability. r is found by principal-axis factoring (the diagonal,
    which holds each scorer's own noise, is replaced by r_n² and the leading eigenvector taken,
    until it settles). Given r, the best linear rule for y under this model (Fisher's discriminant
    with independent noise, σ_n² = 1 − r_n² since Var e_n = 1) weighs scorer n by

        w_n ∝ a_n / σ_n² ∝ r_n / (1 − r_n²):

    a reliable scorer gets a weight that grows without bound as its noise vanishes, a scorer unrelated
    to the others gets none. The factor's sign is the one most scorers agree with (the crowd is
    right more often than not); a scorer that disagrees with it (r_n < 0) gets weight 0 rather than
    a negative one, which would flip its "lower is better". Scorers that err together (two views of
    one model's beliefs) break the independence assumption and are over-trusted together; needs at
    least three scorers, as a rank-one factor of two is not identified. Weights are rescaled to mean 1.
    """
    if len(names) < 3:
        raise ValueError(f"unlabelled weights need at least three scorers to tell reliability apart, got {len(names)}")
    rows = []
    for energies in problems:
        raw = {n: torch.tensor([math.nan if e is None else e for e in energies[n]], dtype=torch.float64) for n in names}
        if any(not torch.isfinite(e).all() for e in raw.values()) or len(raw[names[0]]) < 2:
            continue  # a candidate some scorer could not score, or nothing to compare: no evidence of agreement
        rows.append(torch.stack([normalize(raw[n], normalization) for n in names], dim=1))
    if not rows:
        raise ValueError("no problem has two or more candidates with finite energies from every scorer; "
                         "unlabelled weights need such problems")
    e = torch.cat(rows)  # [candidates, scorers], centred within each problem by the normalisation
    e = e - e.mean(0)
    covariance = e.T @ e / len(e)
    r = torch.sqrt(torch.clamp(covariance.diagonal(), min=0))
    for _ in range(200):
        reduced = covariance.clone()
        reduced.diagonal().copy_(r * r)
        values, vectors = torch.linalg.eigh(reduced)
        new = vectors[:, -1] * torch.sqrt(torch.clamp(values[-1], min=0))
        new = new if new.sum() >= 0 else -new
        settled = torch.allclose(new, r, atol=1e-10)
        r = new
        if settled:
            break
    sd = torch.sqrt(covariance.diagonal())
    reliability = torch.clamp(r / torch.where(sd > 0, sd, 1.0), 0.0, 0.99)  # a correlation, below 1 to keep w finite
    w = reliability / (1 - reliability ** 2)
    if w.sum() <= 0:
        raise ValueError("the scorers do not agree with one another on these problems, so agreement says nothing "
                         "about which to trust; use equal or dev-fitted weights")
    return (w * len(names) / w.sum()).tolist()


def select_with_weights(energies: Mapping[str, Sequence[float]], names: Sequence[str], weights: Sequence[float],
                        normalization: Normalization = "zscore") -> int:
    """The candidate an Ensemble with these weights selects from stored per-scorer energies (argmin,
    first on ties)."""
    return int(torch.argmin(weighted_sum([torch.tensor(energies[n], dtype=torch.float64) for n in names], weights,
                                         normalization)))


def write_weights(path: str | Path, names: Sequence[str], weights: Sequence[float], normalization: Normalization,
                  **about: Any) -> None:
    """A weights file, as ``read_weights`` (and every task CLI's ``--weights FILE``) reads it: each scorer's weight by
    name, the normalisation they were fitted under, and ``about`` (how and on what they were fitted)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps({"weights": dict(zip(names, weights)), "normalization": normalization, **about},
                                  indent=1) + "\n")


def read_weights(path: str | Path, names: Sequence[str], normalization: Normalization) -> list[float]:
    """The weights a file gives an ensemble's scorers ``names``, in their order. A file that is not a weights file,
    lacks one of the scorers, names one the ensemble does not have, or was fitted under another normalisation is an
    error that says so (weights fitted on z-scores mean nothing on ranks)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise ValueError(f"cannot read the weights file {path}: {e.strerror or e}") from e
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not JSON ({e.msg} at line {e.lineno}); a weights file holds "
                         '{"weights": {"<scorer>": <weight>, ...}, "normalization": "<mode>"}') from e
    weights = data.get("weights") if isinstance(data, dict) else None
    if not isinstance(weights, dict) or not all(isinstance(w, (int, float)) and not isinstance(w, bool)
                                                and math.isfinite(w) and w >= 0 for w in weights.values()):
        raise ValueError(f"{path} has no \"weights\" object of finite numbers >= 0 by scorer name")
    missing, unknown = [n for n in names if n not in weights], [n for n in weights if n not in names]
    if missing or unknown:
        raise ValueError(f"{path} weighs {sorted(weights)}, the ensemble has {list(names)}: "
                         + "; ".join(([f"no weight for {missing}"] if missing else [])
                                     + ([f"no scorer {unknown}"] if unknown else [])))
    if data.get("normalization") != normalization:
        raise ValueError(f"{path} was fitted under normalization {data.get('normalization')!r}, this ensemble "
                         f"normalises by {normalization!r}; pass --normalization {data.get('normalization')}")
    return [float(weights[n]) for n in names]
