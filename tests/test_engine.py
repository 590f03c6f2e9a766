import pytest
import torch

from consensus import (
    Agreement,
    Best,
    Budget,
    Ensemble,
    EnsembleEnergies,
    Proposals,
    Resample,
    Scorer,
    TopK,
    TraceWriter,
    read_trace,
    run_consensus,
)
from consensus.core.feedback import Context
from consensus.core.trace import validate_record


class DistanceTo(Scorer):
    """Energy = |x - target|: a real, exact scorer over numbers, so the loop's search is checkable."""

    modality = "number"

    def __init__(self, target):
        self.target = target

    def energy(self, candidates, condition):
        return (torch.tensor(candidates, dtype=torch.float64) - self.target).abs()


class RandomWalk:
    """Proposes n numbers around each parent (or around 0 at first), one generator token each."""

    def __init__(self, n=8, spread=4.0):
        self.n, self.spread, self.calls = n, spread, 0

    def __call__(self, condition, parents, generator):
        self.calls += 1
        centres = parents or [0.0]
        per = self.n // len(centres)
        out = [c + self.spread * float(torch.randn(1, generator=generator)) for c in centres for _ in range(per)]
        return Proposals(out, tokens=len(out), complete=[False] * len(out))


def test_feedback_moves_the_search_towards_low_energy():
    ens = Ensemble([DistanceTo(20.0)])
    one = run_consensus(RandomWalk(), ens, None, budget=Budget(iterations=1), seed=0)
    many = run_consensus(RandomWalk(), ens, None, feedback=TopK(2), budget=Budget(iterations=30), seed=0)
    assert many.best_energy < one.best_energy and many.best_energy < 2.0


def test_same_seed_same_result_and_other_seed_differs():
    ens = Ensemble([DistanceTo(5.0)])
    a = run_consensus(RandomWalk(), ens, None, feedback=TopK(2), budget=Budget(iterations=5), seed=3)
    b = run_consensus(RandomWalk(), ens, None, feedback=TopK(2), budget=Budget(iterations=5), seed=3)
    c = run_consensus(RandomWalk(), ens, None, feedback=TopK(2), budget=Budget(iterations=5), seed=4)
    assert a.best == b.best and a.best != c.best


def test_token_budget_stops_the_loop():
    result = run_consensus(RandomWalk(n=8), Ensemble([DistanceTo(1e9)]), None, budget=Budget(iterations=100,
                           generator_tokens=20), seed=0)
    assert result.stop_reason == "budget" and result.iterations == 3 and result.generator_tokens == 24


def test_scorer_call_budget_is_never_exceeded():
    ens = Ensemble([DistanceTo(1e9)])
    result = run_consensus(RandomWalk(), ens, None, budget=Budget(iterations=100, scorer_calls=5), seed=0)
    assert result.scorer_calls == 5 and result.stop_reason == "budget"


def test_iteration_budget():
    walk = RandomWalk()
    result = run_consensus(walk, Ensemble([DistanceTo(1e9)]), None, budget=Budget(iterations=4), seed=0)
    assert result.iterations == walk.calls == 4


def test_plateau_stops_when_energy_no_longer_falls():
    class Constant:
        def __call__(self, condition, parents, generator):
            return Proposals([1.0, 2.0], complete=[False, False])

    result = run_consensus(Constant(), Ensemble([DistanceTo(0.0)]), None, budget=Budget(iterations=50), patience=3)
    assert result.stop_reason == "plateau" and result.iterations == 4


def test_patience_requires_comparable_energies():
    with pytest.raises(ValueError, match="normalization='none'"):
        run_consensus(RandomWalk(), Ensemble([DistanceTo(0.0)], normalization="zscore"), None, patience=2)


def test_stops_when_survivors_are_complete():
    class Finishes:
        def __call__(self, condition, parents, generator):
            done = parents is not None
            return Proposals([3.0, 7.0], complete=[done, done])

    result = run_consensus(Finishes(), Ensemble([DistanceTo(0.0)]), None, budget=Budget(iterations=10))
    assert result.stop_reason == "complete" and result.iterations == 2 and result.best == 3.0


def test_empty_proposals_are_a_clear_error():
    with pytest.raises(ValueError, match="no candidates"):
        run_consensus(lambda c, p, g: Proposals([]), Ensemble([DistanceTo(0.0)]), None)


def test_callback_fields_and_trace(tmp_path):
    seen = []
    with TraceWriter(tmp_path / "trace.jsonl") as trace:
        run_consensus(RandomWalk(n=4), Ensemble([DistanceTo(1.0)]), None, feedback=TopK(2),
                      budget=Budget(iterations=3), callback=seen.append, trace=trace)
    assert [r["iteration"] for r in seen] == [0, 1, 2]
    assert set(seen[0]) == {"iteration", "proposals", "energies", "survivors", "feedback", "best_energy",
                            "generator_tokens", "scorer_calls"}
    lines = list(read_trace(tmp_path / "trace.jsonl"))
    for line in lines:
        validate_record(line)
    assert len(lines) == 3 and len(lines[0]["energies"]["per_scorer"]["DistanceTo"]) == 4
    assert lines[-1]["generator_tokens"] == 12 and "generator" in lines[0]["seconds"]
    assert lines[0]["feedback"]["TopK"]["kept"] == lines[0]["survivors"] and len(lines[0]["survivors"]) == 2


def test_torn_trace_line_is_skipped(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"iteration": 0}\n{"iterat')
    assert list(read_trace(path)) == [{"iteration": 0}]


def test_overhead_is_accounted():
    result = run_consensus(RandomWalk(), Ensemble([DistanceTo(1.0)]), None, budget=Budget(iterations=3))
    s = result.seconds
    assert s["total"] >= s["generator"] + s["DistanceTo"] and 0 <= result.overhead_fraction <= 1


def _select(form, energies, generator=None):
    """Run one form on four scored candidates; the survivors it keeps."""
    proposals = Proposals(list(range(len(energies))))
    scored = EnsembleEnergies(total=torch.tensor(energies, dtype=torch.float64), per_scorer={})
    form(proposals, scored, Context(None, None, 0, generator or torch.Generator().manual_seed(0)))
    return proposals.survivors


def test_selection_rules():
    e = [3.0, 1.0, float("inf"), 2.0]
    assert _select(Best(), e) == [1]
    assert _select(TopK(3), e) == [1, 3, 0]
    assert _select(TopK(9), e) == [1, 3, 0]  # a dropped candidate never survives
    draws = _select(Resample(k=2000, temperature=0.5), e)
    assert 2 not in draws and draws.count(1) > draws.count(3) > draws.count(0)
    with pytest.raises(ValueError, match="finite energy"):
        _select(Best(), [float("inf")])
    with pytest.raises(ValueError):
        TopK(0)


def test_resampling_keeps_the_population_size_and_follows_the_boltzmann_weights():
    energies = [0.0, 0.5, 1.0, float("inf")]
    kept = _select(Resample(temperature=0.5), energies)
    assert len(kept) == 4 and 3 not in kept  # k unset: the population keeps its size; a dropped one is never drawn
    draws = _select(Resample(k=20_000, temperature=0.5), energies)
    expected = torch.softmax(-torch.tensor(energies[:3]) / 0.5, 0)
    observed = torch.tensor([draws.count(i) for i in range(3)]) / len(draws)
    assert torch.allclose(observed, expected, atol=0.015) and 3 not in draws


def test_forms_chain_on_the_survivors_of_the_previous_form():
    """TopK(3) keeps {1, 3, 0}; Best() then picks among those only, as a chain of processors does."""
    proposals = Proposals(list(range(4)))
    scored = EnsembleEnergies(total=torch.tensor([3.0, 1.0, 0.5, 2.0], dtype=torch.float64), per_scorer={})
    context = Context(None, None, 0, torch.Generator().manual_seed(0))
    TopK(2)(proposals, scored, context)
    assert proposals.survivors == [2, 1]
    proposals.survivors = [0, 3]
    Best()(proposals, scored, context)
    assert proposals.survivors == [3]


def test_resampling_searches_like_a_beam_through_the_engine():
    ens = Ensemble([DistanceTo(20.0)])
    result = run_consensus(RandomWalk(), ens, None, feedback=Resample(k=4, temperature=0.5),
                           budget=Budget(iterations=30), seed=0)
    assert result.best_energy < 2.0 and len(result.survivors) == 4


def test_generator_alone_runs_through_the_same_loop():
    result = run_consensus(RandomWalk(n=3), None, None, feedback=(), budget=Budget(iterations=2), seed=0)
    assert result.iterations == 2 and len(result.survivors) == 3 and result.scorer_calls == 0
    with pytest.raises(ValueError, match="needs an ensemble"):
        run_consensus(RandomWalk(), None, None, feedback=TopK(2))
    with pytest.raises(TypeError, match="not a consensus feedback form"):
        run_consensus(RandomWalk(), Ensemble([DistanceTo(0.0)]), None, feedback=[lambda *a: None])


def test_seconds_budget_stops_the_loop():
    result = run_consensus(RandomWalk(), Ensemble([DistanceTo(1e9)]), None,
                           budget=Budget(iterations=10**6, seconds=0.0), seed=0)
    assert result.stop_reason == "budget" and result.iterations == 1
    with pytest.raises(ValueError, match="seconds"):
        Budget(seconds=-1)


def test_stops_when_survivors_agree():
    result = run_consensus(RandomWalk(n=8, spread=0.1), Ensemble([DistanceTo(0.0)]), None, feedback=TopK(3),
                           budget=Budget(iterations=20), agreement=Agreement(round))
    assert result.stop_reason == "agreement" and result.iterations == 1
    assert len({round(s) for s in result.survivors}) == 1
    never = run_consensus(RandomWalk(), Ensemble([DistanceTo(0.0)]), None, feedback=TopK(3),
                          budget=Budget(iterations=3), agreement=Agreement(lambda x: None))
    assert never.stop_reason == "budget"


def test_resampling_with_one_condition_per_candidate_stays_within_each_condition():
    condition = ["a", "b", "a", "b", "a", "b"]
    proposals = Proposals(list(range(6)))
    scored = EnsembleEnergies(total=torch.tensor([0.0, 9.0, 9.0, 0.0, 9.0, 9.0], dtype=torch.float64), per_scorer={})
    done = Resample(temperature=0.01)(proposals, scored, Context(None, condition, 0, torch.Generator().manual_seed(0)))
    kept = proposals.survivors
    assert done["groups"] == 2 and all(condition[kept[j]] == condition[j] for j in range(6))
    assert kept == [0, 3, 0, 3, 0, 3]  # the low-energy particle of each condition fills its condition's places
    with pytest.raises(ValueError, match="leave k unset"):
        Resample(k=6)(Proposals(list(range(6))), scored, Context(None, condition, 0, torch.Generator()))
