"""The consensus engine: one loop for every generator and every feedback form.

Generation is a sequence of steps over a population of candidates (particles):

    population <- None
    repeat:
        proposals  <- step(condition, population)              # the generator advances every candidate one step
        E          <- ensemble(proposals.candidates, condition) # every scorer, combined by the Ensemble
        for form in feedback: form(proposals, E, context)       # select, resample, reweight, shift, guide
        population <- proposals.advance(survivors)              # what the next step starts from
    until every survivor is complete, the survivors agree, the energy stops falling, or the budget is spent

A step is whatever the generator makes it: a whole solution (best-of-N is one iteration with
``Best()``), a line of reasoning (step-level beam search: ``TopK(k)``), a token (token steering:
``TokenReweight`` or ``CacheShift``), a denoising step (``Guidance``, ``Resample``), a CEM round of
actions (``TopK(elites)``). The engine owns the iteration, the budget, the stopping rules, the seed,
the result, the per-iteration callback and the trace; a new feedback form is a new small class
(``consensus.core.feedback``), never a new loop.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from consensus.core.agreement import StopRule
from consensus.core.budget import Budget
from consensus.core.ensemble import Ensemble, EnsembleEnergies, ScorerError
from consensus.core.feedback.base import Context, Feedback
from consensus.core.feedback.select import Best
from consensus.core.scorer import NoiseLevel
from consensus.core.trace import TraceWriter, summarize_candidate


class GeneratorError(RuntimeError):
    """A generator step raised: the error says at which iteration of which item."""


def _of(item: Any) -> str:
    return "" if item is None else f" of item {item}"


def take(states: Any, indices: Sequence[int]) -> Any:
    """The states at ``indices``: rows of a tensor, items of a list."""
    if isinstance(states, torch.Tensor):
        return states[torch.as_tensor(list(indices), dtype=torch.long, device=states.device)]
    return [states[i] for i in indices]


@dataclass
class Proposals:
    """What one generator step returns: the candidates, and how the population moves on after feedback.

    candidates: what the scorers read (texts, a batch of images, predicted scenes).
    tokens: generator tokens spent on this step.
    complete: ``complete[i]`` says candidate i needs no further step (a finished solution).
    hooks: what feedback forms act through, generator-specific: the LM's next-token log-probabilities
        and cache (``TokenHooks``), the denoiser's predicted clean sample (``DenoisingHooks``).
    advance: ``advance(survivors) -> population``: how the survivors become the next population
        (default: the surviving candidates themselves); a denoising step applies the scheduler here,
        after guidance, and a token step extends its cache by the chosen token.
    survivors: set by feedback forms; None means every candidate survives.
    noise_level: how noisy the sample behind the candidates is (a diffusion step's ``NoiseLevel``), for the
        scorers that read it; None for clean candidates.
    """

    candidates: Any
    tokens: int = 0
    complete: list[bool] | None = None
    hooks: Any = None
    advance: Callable[[list[int]], Any] | None = None
    survivors: list[int] | None = None
    noise_level: NoiseLevel | None = None

    def __post_init__(self) -> None:
        if self.complete is None:
            self.complete = [True] * len(self.candidates)
        if len(self.complete) != len(self.candidates):
            raise ValueError("Proposals.complete must have one flag per candidate")

    def alive(self) -> list[int]:
        """The candidates still in the running: the survivors so far, or all of them."""
        return list(range(len(self.candidates))) if self.survivors is None else list(self.survivors)

    def next_population(self) -> Any:
        survivors = self.alive()
        if self.advance is not None:
            return self.advance(survivors)
        return take(self.candidates, survivors)


class Step(Protocol):
    def __call__(self, condition: Any, population: Any, generator: torch.Generator) -> Proposals:
        """Advance ``population`` (None at first) one step for ``condition``."""


@dataclass
class ConsensusResult:
    """What a run returns, for every task.

    best: the lowest-energy survivor of the last iteration (the first survivor when unscored).
    population: what the last iteration's survivors advanced to (for a denoiser, the final samples).
    seconds: wall time per model (``generator`` and each scorer), ``total`` and ``loop`` (the rest).
    """

    best: Any
    best_energy: float
    survivors: Any
    population: Any
    iterations: int
    generator_tokens: int
    scorer_calls: int
    stop_reason: str
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def overhead_fraction(self) -> float:
        """Share of wall time spent outside the generator and the scorers."""
        total = self.seconds.get("total", 0.0)
        return self.seconds.get("loop", 0.0) / total if total > 0 else 0.0


def run_consensus(
    step: Step,
    ensemble: Ensemble | None,
    condition: Any,
    *,
    feedback: Feedback | Sequence[Feedback] = Best(),
    budget: Budget = Budget(),
    patience: int | None = None,
    agreement: StopRule | None = None,
    seed: int | torch.Generator = 0,
    callback: Callable[[dict[str, Any]], None] | None = None,
    trace: TraceWriter | None = None,
    item: Any = None,
) -> ConsensusResult:
    """Step ``step`` under ``ensemble`` and the feedback forms until a stopping rule fires.

    Stopping rules, checked after every iteration: every survivor is complete (``"complete"``);
    the iteration, generator-token, scorer-call or seconds budget is spent (``"budget"``); the best
    energy has not fallen for ``patience`` iterations (``"plateau"``; only with normalization
    ``none``, since normalised energies are relative to one iteration's candidates); two or more
    survivors agree by the ``Agreement`` rule, e.g. all reach the same final answer, or one answer holds
    75% of the ensemble's weight (``"agreement"``), or the leading survivor passes a ``Verified`` expert's check
    (``"verified"``; both in ``consensus.core.agreement``).

    ``ensemble=None`` with ``feedback=()`` runs the generator alone (the baseline), through the same
    loop and accounting. ``seed`` is an int or a ``torch.Generator`` that the step and the forms draw
    from. ``callback`` receives one dict per iteration (``iteration``, ``proposals``, ``energies`` an
    EnsembleEnergies or None, ``survivors``, ``feedback``, ``best_energy``, ``generator_tokens``,
    ``scorer_calls``); ``trace`` gets the same as one JSON line (schema: ``consensus.core.trace``),
    tagged with ``item``.
    """
    forms = checked_forms(feedback, ensemble, patience, agreement)
    rng = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(seed)
    gradient = any(form.needs_gradient for form in forms)
    start = time.perf_counter()
    model_seconds: dict[str, float] = {"generator": 0.0}
    population: Any = None
    tokens = calls = 0
    best, best_energy, lowest, stale = None, math.nan, math.inf, 0
    stop_reason, chosen = None, []
    for iteration in range(budget.iterations):
        t = time.perf_counter()
        proposals = _proposed(step, condition, population, rng, iteration, item)
        generator_seconds = time.perf_counter() - t
        if iteration == 0:
            check_hooks(forms, step, proposals)
        tokens += proposals.tokens
        energies = _scored(ensemble, proposals, condition, gradient, iteration, item)
        calls += len(ensemble.scorers) if energies is not None else 0
        context = Context(ensemble, condition, iteration, rng)
        done = {}
        for form in forms:
            done[_record_key(form.name, done)] = form(proposals, energies, context) or {}
        survivors = proposals.alive()
        chosen = take(proposals.candidates, survivors)
        t = time.perf_counter()
        population = proposals.next_population()
        generator_seconds += time.perf_counter() - t
        model_seconds["generator"] += generator_seconds
        for name, sec in (energies.seconds if energies is not None else {}).items():
            model_seconds[name] = model_seconds.get(name, 0.0) + sec
        lead = survivors[0] if energies is None else min(survivors, key=lambda i: float(energies.total[i]))
        best, best_energy = proposals.candidates[lead], math.nan if energies is None else float(energies.total[lead])
        stale, lowest = 0 if best_energy < lowest else stale + 1, min(lowest, best_energy)
        record = {
            "iteration": iteration, "proposals": proposals, "energies": energies, "survivors": survivors,
            "feedback": done, "best_energy": best_energy, "generator_tokens": tokens, "scorer_calls": calls,
        }  # fmt: skip
        _report(record, generator_seconds, callback, trace, item)
        stop_reason = stop_rule(proposals, energies, survivors, chosen, agreement, patience, stale) or (
            "budget" if budget.spent(tokens, calls, len(ensemble.scorers) if ensemble else 0,
                                     time.perf_counter() - start) else None)
        if stop_reason is not None:
            break
    total_seconds = time.perf_counter() - start
    seconds = {**model_seconds, "total": total_seconds, "loop": max(0.0, total_seconds - sum(model_seconds.values()))}
    return ConsensusResult(
        best=best, best_energy=best_energy, survivors=chosen, population=population, iterations=iteration + 1,
        generator_tokens=tokens, scorer_calls=calls, stop_reason=stop_reason or "budget", seconds=seconds,
    )  # fmt: skip


def checked_forms(feedback: Feedback | Sequence[Feedback], ensemble: Ensemble | None, patience: int | None,
                  agreement: StopRule | None) -> list[Feedback]:
    """The chain of forms, refused (naming what to do) where a form, the patience rule or the stopping rule needs
    what the run does not give."""
    forms = [feedback] if isinstance(feedback, Feedback) else list(feedback)
    for form in forms:
        if not isinstance(form, Feedback):
            raise TypeError(f"{form!r} is not a consensus feedback form (a subclass of consensus.Feedback)")
    if ensemble is None and any(form.needs_energies for form in forms):
        needing = [type(f).__name__ for f in forms if f.needs_energies]
        raise ValueError(f"feedback {needing} needs an ensemble of scorers; pass one, or feedback=() for the "
                         "generator alone")
    if ensemble is not None:
        for form in forms:
            form.check(ensemble)
    if agreement is not None:
        agreement.check(None if ensemble is None else ensemble.names)
    if patience is not None and (ensemble is None or ensemble.normalization != "none"):
        raise ValueError("patience compares energies across iterations; use it with normalization='none'")
    return forms


def _proposed(step: Step, condition: Any, population: Any, rng: torch.Generator, iteration: int,
              item: Any) -> Proposals:
    """The step's proposals; a failure of the generator names the step, the iteration and the item."""
    try:
        proposals = step(condition, population, rng)
    except (ValueError, TypeError):
        raise  # a bad input the step explains
    except Exception as error:
        name = getattr(step, "__name__", type(step).__name__)
        raise GeneratorError(f"the generator step {name} failed at iteration {iteration}{_of(item)}: "
                             f"{type(error).__name__}: {error}") from error
    if len(proposals.candidates) == 0:
        raise ValueError("the generator proposed no candidates; check the generator and the condition")
    return proposals


def _scored(ensemble: Ensemble | None, proposals: Proposals, condition: Any, gradient: bool, iteration: int,
            item: Any) -> EnsembleEnergies | None:
    """The ensemble's energies of the proposals (None without an ensemble), with the graph kept for forms that
    need a gradient; a scorer's failure names the iteration and the item."""
    if ensemble is None:
        return None
    with torch.enable_grad() if gradient else contextlib.nullcontext():
        try:
            return ensemble(proposals.candidates, condition, proposals.noise_level)
        except ScorerError as error:
            raise ScorerError(f"{error} (iteration {iteration}{_of(item)})") from error.__cause__


def _report(record: dict[str, Any], generator_seconds: float, callback: Callable[[dict[str, Any]], None] | None,
            trace: TraceWriter | None, item: Any) -> None:
    """The iteration to the callback and, as one JSON line, to the trace."""
    if callback is not None:
        callback(record)
    if trace is not None:
        energies = record["energies"]
        seconds = {"generator": generator_seconds, **(energies.seconds if energies is not None else {})}
        trace.write(trace_record(record, seconds, item))


def stop_rule(proposals: Proposals, energies: EnsembleEnergies | None, survivors: list[int], chosen: Any,
              agreement: StopRule | None, patience: int | None, stale: int) -> str | None:
    """Which stopping rule (other than the budget) fires after this iteration, if any."""
    if all(proposals.complete[i] for i in survivors):
        return "complete"
    if agreement is not None and agreement.settled(chosen, None if energies is None else EnsembleEnergies(
            energies.total[survivors], {k: e[survivors] for k, e in energies.per_scorer.items()})):
        return agreement.reason
    if patience is not None and stale >= patience:
        return "plateau"
    return None


def check_hooks(forms: Sequence[Feedback], step: Step, proposals: Proposals) -> None:
    """Refuse a chain whose forms act through hooks the step's proposals do not carry, naming both."""
    for form in forms:
        if form.needs_hooks is not None and not isinstance(proposals.hooks, form.needs_hooks):
            step_name = getattr(step, "__name__", type(step).__name__)
            raise TypeError(f"feedback {form.name} acts through {form.needs_hooks.__name__}, which the step "
                            f"{step_name} does not give (its proposals carry {type(proposals.hooks).__name__}); "
                            "pair it with a step that does, or use a form that only selects (Best, TopK, Resample)")


def _record_key(name: str, done: dict[str, Any]) -> str:
    """``name``, or ``name#k`` for the k-th form of that name in a chain, so a chain is recorded whole."""
    k = 1 + sum(key.split("#")[0] == name for key in done)
    return name if k == 1 else f"{name}#{k}"


def trace_record(record: dict[str, Any], seconds: dict[str, float], item: Any) -> dict[str, Any]:
    """One iteration as the trace's JSON object (``consensus.core.trace.TRACE_FIELDS``)."""
    proposals: Proposals = record["proposals"]
    energies: EnsembleEnergies | None = record["energies"]
    return {
        "item": item,
        "iteration": record["iteration"],
        "candidates": [summarize_candidate(c) for c in proposals.candidates],
        "energies": energies.to_json() if energies is not None else None,
        "survivors": record["survivors"],
        "feedback": record["feedback"],
        "best_energy": record["best_energy"],
        "tokens": proposals.tokens,
        "generator_tokens": record["generator_tokens"],
        "scorer_calls": record["scorer_calls"],
        "seconds": seconds,
    }
