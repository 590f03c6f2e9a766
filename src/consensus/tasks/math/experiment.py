"""The math experiment assembled: generator, scorers, ensemble, and a batch of problems solved every way.

``Experiment.solve_batch`` runs, for each problem and at one generator budget: greedy decoding; N sampled
solutions scored by every scorer (which gives self-consistency, best-of-N by each single scorer, ensemble
consensus at solution level and pass@N from the same N samples); and ensemble consensus at step level. The
problems' generator calls are batched across them, and their scorers' calls too (their runs in lockstep). It
returns one JSON-able record per problem; the methods' accuracies are computed from such records by
``consensus.tasks.math.report``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from consensus.core.agreement import Agreement, StopRule, Verified
from consensus.core.budget import Budget
from consensus.core.engine import ConsensusResult, run_consensus
from consensus.core.ensemble import Ensemble, Normalization
from consensus.core.feedback import Feedback, TopK
from consensus.core.rounds import Rounds, doubling
from consensus.generators import TextGenerator
from consensus.generators.text.protocol import Completion, ReadsHiddenStates
from consensus.generators.text.lockstep import consensus_in_lockstep, in_lockstep
from consensus.generators.text.prefix_cache import forget_kept_prefixes
from consensus.generators.text.steps import LineSteps, Sampling, SolutionSteps
from consensus.scorers.text import AnswerAgreement, ArithmeticVerifier, LMLikelihood
from consensus.scorers.text.answers import extract_flexible
from consensus.scorers.text.lm_verifier import LMVerifier
from consensus.scorers.text.verifier import SolutionEncoder, StepVerifier, TrainedVerifier
from consensus.tasks.math.data import Problem
from consensus.tasks.math.generator import load_verifier_lm
from consensus.tasks.math.prompt import STOP, format_prompt, is_complete


def solution_steps(lm: TextGenerator, n: int, sampling: Sampling = Sampling(),
                   exemplars: Sequence[Problem] = ()) -> SolutionSteps:
    """N whole solutions per step in the math prompt format."""
    return SolutionSteps(lm, n, lambda q: format_prompt(q, exemplars), sampling, STOP)


def line_steps(lm: TextGenerator, n: int, sampling: Sampling = Sampling(), exemplars: Sequence[Problem] = ()) -> LineSteps:
    """N proposed next lines per step in the math prompt format, complete at the ``#### N`` line."""
    return LineSteps(lm, n, lambda q: format_prompt(q, exemplars), is_complete, sampling, STOP, new_item="Question:")


ADAPTIVE_SHARE = 0.75  # stop once one answer holds 75% of the votes: its_hub's adaptive self-consistency
# adaptive compute's stopping rules: the answers agree, or the ensemble's choice has every computation right
UNTIL: dict[str, StopRule] = {"agree": Agreement(extract_flexible, share=ADAPTIVE_SHARE),
                              "verified": Verified("ArithmeticVerifier", at_most=0.0)}


def adaptive(lm: TextGenerator, ensemble: Ensemble, question: str, n: int, seed: int | torch.Generator,
             sampling: Sampling = Sampling(), exemplars: Sequence[Problem] = (), until: StopRule = UNTIL["agree"],
             **engine: Any) -> ConsensusResult:
    """Adaptive compute: whole solutions drawn in rounds of 2, 4, 8, … up to ``n``, stopped once ``until`` fires
    (by default, one final answer holds ``ADAPTIVE_SHARE`` of them); the ensemble chooses among all drawn
    (``consensus.core.rounds``). ``engine``: the rest of ``run_consensus``'s options (trace, item, callback)."""
    sizes = doubling(n)
    rounds = Rounds(solution_steps(lm, n, sampling, exemplars).propose, sizes)
    return run_consensus(rounds, ensemble, question, feedback=(), budget=Budget(iterations=len(sizes)),
                         agreement=until, seed=seed, **engine)


MAX_STEPS = 24  # lines a step-level solution may take: twice the longest gold solution of the problem sets here


def build_ensemble(lm: TextGenerator, exemplars: Sequence[Problem] = (), normalization: Normalization = "zscore",
                   step_verifier: bool = False, lm_verifier: bool = False, **options: Any) -> Ensemble:
    """The four math experts, equally weighted, z-scored across each candidate set; ``step_verifier`` adds the
    process verifier, sharing the outcome verifier's sentence encoder (and its embeddings of the candidates), and
    ``lm_verifier`` the LM verifier, a value head on the offline math generator tuned to judge (its own LM, on
    ``lm``'s backend where that one gives hidden states, else the default). Neither is a default: their measurements are in the README's math results.
    ``options``: the rest of ``Ensemble``'s keywords (nonfinite, combination, spread)."""
    encoder = SolutionEncoder()
    scorers = [
        ArithmeticVerifier(),
        LMLikelihood(lm, prompt=lambda q: format_prompt(q, exemplars)),
        AnswerAgreement(),
        TrainedVerifier(encoder=encoder),
        *([StepVerifier(encoder=encoder)] if step_verifier else []),
        *([LMVerifier(load_verifier_lm(backend=lm.backend if isinstance(lm, ReadsHiddenStates) else "auto"),
                      prompt=lambda q: format_prompt(q, exemplars))] if lm_verifier else []),
    ]
    return Ensemble(scorers, normalization=normalization, **options)


def draw_samples(lm: TextGenerator, problems: Sequence[Problem], n: int, seed: int, sampling: Sampling = Sampling(),
                 exemplars: Sequence[Problem] = ()) -> list[dict]:
    """N sampled solutions per problem, each problem from its own seeded generator, the problems' draws in one
    generator call (lockstep) from no kept prefixes: ``{"samples", "tokens", "sample_tokens", "seconds"}`` per
    problem (tokens: all the samples', sample_tokens: each one's; seconds: its share of the batch)."""
    def draw(problem: Problem, view: TextGenerator, _: None) -> list[Completion]:
        steps = solution_steps(view, n, sampling, exemplars)
        return steps.completions(problem.question, n, torch.Generator().manual_seed(seed))

    forget_kept_prefixes(lm)
    start = time.perf_counter()
    drawn = in_lockstep(lm, [functools.partial(draw, p) for p in problems])
    seconds = (time.perf_counter() - start) / len(problems)
    return [{"samples": [c.text for c in d], "tokens": sum(c.tokens for c in d), "sample_tokens": [c.tokens for c in d],
             "seconds": seconds} for d in drawn]


METHODS = ("solution", "step", "adaptive")  # the consensus runs ``Experiment.run`` makes


@dataclass
class Experiment:
    """The math pipeline assembled once: the generator, the ensemble, N, the beam, the exemplars and the sampling.
    The command line, the server and the benchmarks all run problems through it."""

    lm: TextGenerator
    ensemble: Ensemble | None
    n: int = 8
    beam: int = 2
    exemplars: Sequence[Problem] = ()
    sampling: Sampling = field(default_factory=Sampling)
    max_steps: int = MAX_STEPS
    until: StopRule = UNTIL["agree"]  # when adaptive compute stops drawing

    def greedy(self, problems: Sequence[Problem]) -> list[dict]:
        prompts = [format_prompt(p.question, self.exemplars) for p in problems]
        start = time.perf_counter()
        outs = self.lm.sample(prompts, 1, max_new_tokens=self.sampling.max_new_tokens, temperature=0.0, stop=STOP)
        seconds = (time.perf_counter() - start) / len(problems)  # batched: each problem's share
        return [{"text": o[0].text, "tokens": o[0].tokens, "seconds": seconds} for o in outs]

    def run(self, problem: Problem, view: TextGenerator, ensemble: Ensemble, method: str, seed: int,
            feedback: Feedback | None = None, **engine: Any) -> ConsensusResult:
        """One problem's consensus run: ``solution`` (best of N, one iteration), ``step`` (a beam of ``beam`` partial
        solutions, a line a step, until an answer; or what ``feedback`` keeps, e.g. ``Resample`` particles) or
        ``adaptive`` (whole solutions in rounds until ``until`` fires). ``view`` and ``ensemble`` are what a
        lockstep gives each run (``consensus_in_lockstep``); ``engine``: ``run_consensus``'s trace and callback."""
        if method not in METHODS:
            raise ValueError(f"unknown consensus method {method!r}; use one of {', '.join(METHODS)}")
        if method == "adaptive":
            return adaptive(view, ensemble, problem.question, self.n, seed, self.sampling, self.exemplars,
                            self.until, item=problem.id, **engine)
        solution = method == "solution"
        steps = (solution_steps if solution else line_steps)(view, self.n, self.sampling, self.exemplars)
        return run_consensus(steps, ensemble, problem.question, feedback=feedback or TopK(1 if solution else self.beam),
                             budget=Budget(iterations=1 if solution else self.max_steps), seed=seed, item=problem.id,
                             **engine)

    def solve_batch(self, problems: Sequence[Problem], seed: int, step_level: bool = True) -> list[dict]:
        """Every method on each problem; ``step_level=False`` leaves out the step-level search (the costliest).
        The problems' greedy solutions are drawn in one generator call, and their consensus runs in lockstep (so
        their samples are too); each problem draws from its own seeded generator, in float32 what it draws alone
        (in bfloat16 a batch rounds by its shape, so the draws depend on the batch)."""
        greedy = self.greedy(problems)
        records = [{**scored, "greedy": g, "solution_level": {"text": run.best, "seconds": run.seconds}}
                   for (scored, run), g in zip(self.score_samples(problems, seed), greedy)]
        if step_level:
            for r, step in zip(records, self.step_levels(problems, seed)):
                r["step_level"] = step
        return records

    def samples(self, problems: Sequence[Problem], seed: int) -> list[dict]:
        """N more sampled solutions per problem (with another seed than ``solve_batch``'s, they double its samples
        for a self-consistency baseline at twice the budget)."""
        return draw_samples(self.lm, problems, self.n, seed, self.sampling, self.exemplars)

    def score_samples(self, problems: Sequence[Problem], seed: int) -> list[tuple[dict, ConsensusResult]]:
        """Per problem, N sampled solutions and every scorer's energies of them (the ensemble's total too), with the
        solution-level consensus run that drew and scored them; the runs in lockstep, from no kept prefixes."""
        scored: list[dict] = [{} for _ in problems]

        def keep(i: int, record: dict) -> None:
            energies = {k: v.tolist() for k, v in record["energies"].per_scorer.items()}
            scored[i] = {"samples": list(record["proposals"].candidates),
                         "energies": {**energies, "ensemble": record["energies"].total.tolist()}}

        runs = self.in_lockstep([functools.partial(self.run, p, method="solution", seed=seed,
                                                   callback=functools.partial(keep, i)) for i, p in enumerate(problems)])
        return [({"question": p.question, "gold": p.answer, "template": p.template, "samples": s["samples"],
                  "sample_tokens": r.generator_tokens, "energies": s["energies"]}, r)
                for p, s, r in zip(problems, scored, runs)]

    def step_levels(self, problems: Sequence[Problem], seed: int, feedback: Feedback | None = None) -> list[dict]:
        """Step-level consensus on each problem (N proposed next steps, the best ``beam`` partial solutions kept,
        until an answer; or what ``feedback`` keeps, e.g. ``Resample`` particles); the runs in lockstep (each
        step's generator calls in one batch), from no kept prefixes."""
        runs = self.in_lockstep([functools.partial(self.run, p, method="step", seed=seed, feedback=feedback)
                                 for p in problems])
        return [{"text": r.best, "tokens": r.generator_tokens, "iterations": r.iterations,
                 "stop_reason": r.stop_reason, "seconds": r.seconds} for r in runs]

    def in_lockstep(self, runs: Sequence[Any]) -> list[ConsensusResult]:
        """``runs`` (each a function of a lockstep view and its ensemble) in lockstep, from no kept prefixes: each
        step's generator calls in one batch, and each scorer's calls too."""
        forget_kept_prefixes(self.lm)
        return consensus_in_lockstep(self.lm, list(runs), self.ensemble)
