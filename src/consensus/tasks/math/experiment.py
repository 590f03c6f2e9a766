"""The math experiment assembled: generator, scorers, ensemble, and one problem solved every way.

``Experiment.greedy`` and ``Experiment.solve`` run, for one problem and at one generator budget: greedy decoding; N
sampled solutions scored by every scorer (which gives self-consistency, best-of-N by each
single scorer, ensemble consensus at solution level and pass@N from the same N samples);
and ensemble consensus at step level. It returns a JSON-able record; the methods' accuracies
are computed from such records by ``consensus.tasks.math.report``. ``solve_batch`` does the same for several
problems, with their generator calls batched across them.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from consensus.core.budget import Budget
from consensus.core.engine import ConsensusResult, run_consensus
from consensus.core.ensemble import Ensemble, Normalization
from consensus.core.feedback import TopK
from consensus.generators import CausalLMGenerator, TextGenerator
from consensus.generators.text.lockstep import consensus_in_lockstep
from consensus.generators.text.prefix_cache import forget_kept_prefixes
from consensus.generators.text.steps import LineSteps, Sampling, SolutionSteps
from consensus.scorers.text import AnswerAgreement, ArithmeticVerifier, LMLikelihood
from consensus.scorers.text.verifier import SolutionEncoder, StepVerifier, TrainedVerifier
from consensus.tasks.math.data import Problem
from consensus.tasks.math.prompt import STOP, format_prompt, is_complete


def solution_steps(lm: TextGenerator, n: int, sampling: Sampling = Sampling(),
                   exemplars: Sequence[Problem] = ()) -> SolutionSteps:
    """N whole solutions per step in the math prompt format."""
    return SolutionSteps(lm, n, lambda q: format_prompt(q, exemplars), sampling, STOP)


def line_steps(lm: TextGenerator, n: int, sampling: Sampling = Sampling(), exemplars: Sequence[Problem] = ()) -> LineSteps:
    """N proposed next lines per step in the math prompt format, complete at the ``#### N`` line."""
    return LineSteps(lm, n, lambda q: format_prompt(q, exemplars), is_complete, sampling, STOP, new_item="Question:")


def build_ensemble(lm: CausalLMGenerator, exemplars: Sequence[Problem] = (),
                   normalization: Normalization = "zscore", step_verifier: bool = False) -> Ensemble:
    """The four math experts, equally weighted, z-scored across each candidate set; ``step_verifier`` adds a
    fifth, the process verifier, sharing the outcome verifier's sentence encoder (and its embeddings of the
    candidates). It is not a default: measured, it adds nothing the four do not (README, math results)."""
    encoder = SolutionEncoder()
    scorers = [
        ArithmeticVerifier(),
        LMLikelihood(lm, prompt=lambda q: format_prompt(q, exemplars)),
        AnswerAgreement(),
        TrainedVerifier(encoder=encoder),
        *([StepVerifier(encoder=encoder)] if step_verifier else []),
    ]
    return Ensemble(scorers, normalization=normalization)


def prefetched(lm: TextGenerator, problems: Sequence[Problem], n: int, seed: int, sampling: Sampling = Sampling(),
               exemplars: Sequence[Problem] = ()) -> SolutionSteps:
    """Solution steps holding the N sampled solutions of every problem, drawn in one generator call, each problem
    from its own generator seeded as its engine run would seed it."""
    drawn = solution_steps(lm, n, sampling, exemplars)
    drawn.prefetch([p.question for p in problems], [torch.Generator().manual_seed(seed) for _ in problems])
    return drawn


def draw_samples(lm: TextGenerator, problems: Sequence[Problem], n: int, seed: int, sampling: Sampling = Sampling(),
                 exemplars: Sequence[Problem] = ()) -> list[dict]:
    """N sampled solutions per problem, drawn for the batch in one generator call, each problem from its own
    seeded generator: ``{"samples", "tokens", "seconds"}`` per problem (seconds: its share of the batch)."""
    start = time.perf_counter()
    drawn = prefetched(lm, problems, n, seed, sampling, exemplars)
    seconds = (time.perf_counter() - start) / len(problems)
    out = []
    for p in problems:
        proposals = drawn(p.question, None, torch.Generator().manual_seed(seed))
        out.append({"samples": [str(c) for c in proposals.candidates], "tokens": proposals.tokens, "seconds": seconds})
    return out


@dataclass
class Experiment:
    lm: CausalLMGenerator
    ensemble: Ensemble
    n: int = 8
    beam: int = 2
    exemplars: Sequence[Problem] = ()
    sampling: Sampling = field(default_factory=Sampling)
    max_steps: int = 24

    def greedy(self, problems: Sequence[Problem]) -> list[dict]:
        prompts = [format_prompt(p.question, self.exemplars) for p in problems]
        start = time.perf_counter()
        outs = self.lm.sample(prompts, 1, max_new_tokens=self.sampling.max_new_tokens, temperature=0.0, stop=STOP)
        seconds = (time.perf_counter() - start) / len(problems)  # batched: each problem's share
        return [{"text": o[0].text, "tokens": o[0].tokens, "seconds": seconds} for o in outs]

    def solve_batch(self, problems: Sequence[Problem], seed: int, step_level: bool = True) -> list[dict]:
        """``solve`` for several problems, their greedy and sampled solutions drawn in one generator batch each
        (every problem from its own seeded generator; in bfloat16 a batch's draws still depend on its rows), and
        their step-level runs in lockstep. The batch starts with no kept prefixes, so its records depend on it alone."""
        forget_kept_prefixes(self.lm)
        greedy = self.greedy(problems)
        start = time.perf_counter()
        drawn = self.prefetched(problems, seed)
        share = (time.perf_counter() - start) / len(problems)
        records = [self.solve(p, g, seed, drawn, step_level=False) for p, g in zip(problems, greedy)]
        for r in records:  # the batched draw happened before each run: charge each problem its share
            seconds = r["solution_level"]["seconds"]
            seconds["generator"] += share
            seconds["total"] += share
        if step_level:
            for r, step in zip(records, self.step_levels(problems, seed)):
                r["step_level"] = step
        return records

    def prefetched(self, problems: Sequence[Problem], seed: int) -> SolutionSteps:
        """Solution steps holding the N sampled solutions of every problem, drawn in one generator call."""
        return prefetched(self.lm, problems, self.n, seed, self.sampling, self.exemplars)

    def samples(self, problems: Sequence[Problem], seed: int) -> list[dict]:
        """N more sampled solutions per problem (with another seed than ``solve``'s, they double its samples for a
        self-consistency baseline at twice the budget)."""
        return draw_samples(self.lm, problems, self.n, seed, self.sampling, self.exemplars)

    def solve(self, problem: Problem, greedy: dict, seed: int, drawn: SolutionSteps | None = None,
              step_level: bool = True) -> dict:
        """Every method on one problem; ``step_level=False`` leaves out the step-level search (the costliest)."""
        scored, solution = self.score_samples(problem, seed, drawn)
        return {
            **scored,
            "greedy": greedy,
            "solution_level": {"text": solution.best, "seconds": solution.seconds},
            **({"step_level": self.step_level(problem, seed)} if step_level else {}),
        }

    def step_level(self, problem: Problem, seed: int) -> dict:
        """Step-level consensus: N proposed next steps, the best ``beam`` partial solutions kept, until an answer."""
        return self._step_record(self._step_run(problem, seed, self.lm))

    def step_levels(self, problems: Sequence[Problem], seed: int) -> list[dict]:
        """``step_level`` of every problem, the runs in lockstep (each step's generator calls in one batch), from no
        kept prefixes."""
        forget_kept_prefixes(self.lm)
        runs = consensus_in_lockstep(self.lm, [functools.partial(self._step_run, p, seed) for p in problems])
        return [self._step_record(run) for run in runs]

    def _step_run(self, problem: Problem, seed: int, lm: TextGenerator) -> ConsensusResult:
        return run_consensus(line_steps(lm, self.n, self.sampling, self.exemplars), self.ensemble, problem.question,
                             feedback=TopK(self.beam), budget=Budget(iterations=self.max_steps), seed=seed)

    @staticmethod
    def _step_record(run: ConsensusResult) -> dict:
        return {"text": run.best, "tokens": run.generator_tokens, "iterations": run.iterations,
                "stop_reason": run.stop_reason, "seconds": run.seconds}

    def score_samples(self, problem: Problem, seed: int,
                      drawn: SolutionSteps | None = None) -> tuple[dict, ConsensusResult]:
        """N sampled solutions and every scorer's energies of them (the ensemble's total too), with the
        solution-level consensus run that drew and scored them (from ``drawn`` when they were prefetched)."""
        per_scorer: dict[str, list[float]] = {}
        samples: list[str] = []

        def keep(record: dict) -> None:
            samples.extend(record["proposals"].candidates)
            per_scorer.update({k: v.tolist() for k, v in record["energies"].per_scorer.items()})
            per_scorer["ensemble"] = record["energies"].total.tolist()

        solution = run_consensus(
            drawn or solution_steps(self.lm, self.n, self.sampling, self.exemplars), self.ensemble, problem.question,
            budget=Budget(iterations=1), seed=seed, callback=keep,
        )
        scored = {"question": problem.question, "gold": problem.answer, "template": problem.template,
                  "samples": samples, "sample_tokens": solution.generator_tokens, "energies": per_scorer}
        return scored, solution
