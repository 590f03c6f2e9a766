"""Adaptive compute: the Agreement and Verified stopping rules and the Rounds step that grows a pool until the
experts agree."""

import pytest
import torch

from consensus import (Agreement, Budget, Ensemble, Proposals, Rounds, Scorer, TraceWriter, Verified, read_trace,
                       run_consensus)


class Dice:
    """Draws n integers in [0, faces), one generator token each: a real sampler whose answers are its numbers."""

    def __init__(self, faces):
        self.faces, self.draws = faces, []

    def __call__(self, condition, n, generator):
        self.draws.append(n)
        return Proposals(torch.randint(self.faces, (n,), generator=generator).tolist(), tokens=n)


class Prefers(Scorer):
    """Energy = 0 for ``value``, 1 for anything else."""

    modality = "number"

    def __init__(self, value):
        self.value = value

    def energy(self, candidates, condition):
        return torch.tensor([0.0 if c == self.value else 1.0 for c in candidates], dtype=torch.float64)


def test_shares_count_votes_and_answerless_candidates_hold_agreement_back():
    rule = Agreement(lambda c: c, share=0.75)
    assert rule.shares([1, 1, 1, 2]) == {1: 0.75, 2: 0.25} and rule.reached([1, 1, 1, 2])
    assert not rule.reached([1, 1, None, 2]) and rule.shares([1, 1, None, 2])[1] == 0.5
    assert Agreement(lambda c: c).reached([3, 3]) and not Agreement(lambda c: c).reached([3, 3, 4])
    assert not rule.reached([5]), "one candidate agrees with nobody"
    assert rule.leader([2, 1, 1]) == 1 and rule.leader([None]) is None


def test_weighted_shares_are_the_ensembles_posterior_mass():
    rule = Agreement(lambda c: c, share=0.9, weighted=True)
    energies = torch.tensor([0.0, 3.0, 3.0, 3.0])  # one candidate the ensemble prefers over three votes
    shares = rule.shares([7, 8, 8, 8], energies)
    mass = 1 / (1 + 3 * torch.exp(torch.tensor(-3.0)).item())
    assert shares[7] == pytest.approx(mass) and rule.leader([7, 8, 8, 8], energies) == 7
    assert rule.reached([7, 8, 8, 8], energies * 2) and not rule.reached([7, 8, 8, 8], energies)
    assert rule.shares([7, 8], torch.tensor([float("nan"), 0.0])) == {7: 0.0, 8: 1.0}, "an unscored candidate: no vote"
    with pytest.raises(ValueError, match="ensemble"):
        rule.weights(2, None)


@pytest.mark.parametrize("kwargs", [{"share": 0.0}, {"share": 1.5}, {"temperature": 0.0}])
def test_agreement_refuses_bad_parameters(kwargs):
    with pytest.raises(ValueError, match="Agreement"):
        Agreement(lambda c: c, **kwargs)


def test_rounds_grow_the_pool_and_pay_only_for_new_draws():
    dice = Dice(faces=1000)  # answers never agree: every round is drawn
    run = run_consensus(Rounds(dice), Ensemble([Prefers(3)]), None, feedback=(), budget=Budget(iterations=5),
                        agreement=Agreement(lambda c: c, share=0.75))
    assert dice.draws == [2, 2, 4, 8, 16] and run.generator_tokens == 32
    assert run.stop_reason == "complete" and len(run.survivors) == 32


def test_rounds_stop_when_the_votes_agree():
    dice = Dice(faces=1)  # every draw the same answer
    run = run_consensus(Rounds(dice), None, None, feedback=(), budget=Budget(iterations=5),
                        agreement=Agreement(lambda c: c, share=0.75))
    assert run.stop_reason == "agreement" and run.iterations == 1 and run.generator_tokens == 2


def test_weighted_rounds_stop_when_the_ensemble_is_sure_and_choose_its_best(tmp_path):
    dice = Dice(faces=4)
    trace = tmp_path / "trace.jsonl"
    with TraceWriter(trace) as writer:
        run = run_consensus(Rounds(dice), Ensemble([Prefers(3)], normalization="none"), None, feedback=(),
                            budget=Budget(iterations=5), agreement=Agreement(lambda c: c, share=0.9, weighted=True,
                                                                             temperature=0.2), trace=writer)
    # Once a 3 is drawn it holds exp(5) times the weight of any other candidate: the ensemble agrees on it.
    assert run.stop_reason == "agreement" and run.best == 3
    rounds = list(read_trace(trace))
    assert [len(r["candidates"]) for r in rounds] == [2, 4, 8, 16, 32][:run.iterations]
    assert [r["tokens"] for r in rounds] == dice.draws


def test_weighted_agreement_needs_an_ensemble():
    with pytest.raises(ValueError, match="weighted Agreement"):
        run_consensus(Rounds(Dice(2)), None, None, feedback=(), agreement=Agreement(lambda c: c, weighted=True))


class Distance(Scorer):
    """Energy = |c − value|: a second opinion that prefers numbers near ``value``."""

    modality = "number"

    def __init__(self, value):
        self.value = value

    def energy(self, candidates, condition):
        return torch.tensor([abs(c - self.value) for c in candidates], dtype=torch.float64)


def test_verified_stops_once_the_ensembles_choice_passes_the_check():
    dice = Dice(faces=6)
    ensemble = Ensemble([Prefers(3), Distance(3)], normalization="none")
    trace_of = []
    run = run_consensus(Rounds(dice), ensemble, None, feedback=(), budget=Budget(iterations=5),
                        agreement=Verified("Prefers"), callback=trace_of.append)
    assert run.stop_reason == "verified" and run.best == 3
    # every earlier round's leader failed the check, so the pool kept growing until a 3 led it
    assert all(3 not in r["proposals"].candidates for r in trace_of[:-1])
    assert run.generator_tokens == sum(dice.draws) == [2, 4, 8, 16, 32][run.iterations - 1]


def test_verified_reads_the_leader_not_any_candidate():
    # a 3 is in the pool, but the ensemble leads with a 4 (Distance outweighs Prefers): not verified
    ensemble = Ensemble([Prefers(3), Distance(4)], weights=[1.0, 10.0], normalization="none")
    energies = ensemble([3, 4], None)
    assert not Verified("Prefers").settled([3, 4], energies)
    assert Verified("Prefers", at_most=1.0).settled([3, 4], energies), "a looser check passes the leader"
    assert not Verified("Prefers").settled([], None)


def test_verified_needs_its_scorer_in_the_ensemble():
    with pytest.raises(ValueError, match="only Distance"):
        run_consensus(Rounds(Dice(2)), Ensemble([Distance(1)]), None, feedback=(), agreement=Verified("Prefers"))
    with pytest.raises(ValueError, match="no ensemble"):
        run_consensus(Rounds(Dice(2)), None, None, feedback=(), agreement=Verified("Prefers"))


def test_rounds_of_tensors_concatenate_the_pool():
    def draw(condition, n, generator):
        return Proposals(torch.randn(n, 3, generator=generator), tokens=n)

    run = run_consensus(Rounds(draw, sizes=(1, 3)), None, None, feedback=(), budget=Budget(iterations=2))
    assert run.population.shape == (3, 3) and run.generator_tokens == 3


def test_rounds_refuse_bad_sizes_and_a_budget_past_the_last_round():
    with pytest.raises(ValueError, match="increasing"):
        Rounds(Dice(2), sizes=(4, 2))
    with pytest.raises(ValueError, match="at most 2 iterations"):
        rounds = Rounds(Dice(2), sizes=(1, 2))
        rounds(None, rounds(None, rounds(None, None, torch.Generator()).candidates, torch.Generator()).candidates,
               torch.Generator())
