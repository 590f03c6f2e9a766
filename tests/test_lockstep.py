"""Items' consensus runs in lockstep: each step's generator calls merged into one batch and its scorers' calls into
one per scorer, and every run getting what it gets alone (float32 tiny LM), errors included."""

import pytest
import torch

from consensus.core.budget import Budget
from consensus.core.engine import run_consensus
from consensus.core.ensemble import Ensemble
from consensus.core.feedback import TopK
from consensus.generators.text.lockstep import consensus_in_lockstep, in_lockstep
from consensus.generators.text.steps import LineSteps, Sampling, SolutionSteps
from consensus.scorers.text import AnswerAgreement, LMLikelihood

QUESTIONS = ["What is 2 + 3?", "hello", "What is 12 + 30 + 1?", "The answer is 12."]


def step_level(lm, ensemble, question: str, n: int = 4):
    steps = LineSteps(lm, n, lambda q: f"Question: {q}\nAnswer:\n", lambda text: "####" in text,
                      Sampling(max_new_tokens=24), max_step_tokens=6)
    result = run_consensus(steps, ensemble, question, feedback=TopK(2), budget=Budget(iterations=4), seed=5)
    return str(result.best), result.generator_tokens, result.iterations


def test_runs_in_lockstep_get_what_each_gets_alone_in_fewer_generator_and_scorer_calls(tiny_lm):
    scored = []

    class Counted(LMLikelihood):
        def energy_items(self, candidate_sets, conditions, noise_levels=None):
            scored.append(len(candidate_sets))
            return super().energy_items(candidate_sets, conditions, noise_levels)

    ensemble = Ensemble([Counted(tiny_lm), AnswerAgreement()], normalization="zscore")
    alone = [step_level(tiny_lm, ensemble, q) for q in QUESTIONS]
    calls, scored[:] = [], []
    original = tiny_lm.sample
    tiny_lm.sample = lambda *args, **kwargs: calls.append(1) or original(*args, **kwargs)
    try:
        together = in_lockstep(tiny_lm, [lambda view, ens, q=q: step_level(view, ens, q) for q in QUESTIONS], ensemble)
    finally:
        del tiny_lm.sample
    assert together == alone
    steps = max(iterations for _, _, iterations in alone)
    # one merged call per step and number of rows per parent (1 or 2 growing parents), not one per item and step
    assert len(calls) <= 2 * steps
    # one scorer call per step for every run still going, not one per item and step
    assert len(scored) == steps and scored[0] == len(QUESTIONS)


def test_solutions_drawn_in_lockstep_are_the_ones_each_item_draws_alone(tiny_lm):
    steps = lambda lm: SolutionSteps(lm, 3, lambda q: f"Question: {q}\nAnswer:\n", Sampling(max_new_tokens=6))  # noqa: E731
    alone = [steps(tiny_lm)(q, None, torch.Generator().manual_seed(7)).candidates for q in QUESTIONS]
    together = in_lockstep(tiny_lm, [lambda view, _, q=q: steps(view)(q, None, torch.Generator().manual_seed(7))
                                     .candidates for q in QUESTIONS])
    assert together == alone


def test_a_failing_run_raises_after_the_others_end(tiny_lm):
    finished = []

    def good(view, _):
        out = view.sample(["hello"], 2, max_new_tokens=3, temperature=1.0, generator=torch.Generator().manual_seed(0))
        finished.append(len(out[0]))
        return out

    def bad(view, _):
        view.sample(["hello"], 2, max_new_tokens=0)  # refused by the generator

    with pytest.raises(ValueError, match="max_new_tokens"):
        in_lockstep(tiny_lm, [good, bad, good])
    assert finished == [2, 2]


def test_engine_runs_in_lockstep_share_the_wall_time(tiny_lm):
    import time

    ensemble = Ensemble([LMLikelihood(tiny_lm)])
    steps = lambda view: LineSteps(view, 4, lambda q: f"Question: {q}\nAnswer:\n", lambda t: "####" in t,  # noqa: E731
                                   Sampling(max_new_tokens=24), max_step_tokens=6)
    start = time.perf_counter()
    runs = consensus_in_lockstep(tiny_lm, [lambda view, ens, q=q: run_consensus(steps(view), ens, q, feedback=TopK(2),
                                                                                budget=Budget(iterations=3), seed=1)
                                           for q in QUESTIONS], ensemble)
    wall = time.perf_counter() - start
    totals = [r.seconds["total"] for r in runs]
    assert all(t > 0 for t in totals) and sum(totals) <= wall
    assert all(r.seconds["generator"] <= r.seconds["total"] for r in runs)
