"""Token feedback forms through the engine on a tiny random GPT-2 (the generic paths of generators/text/steering.py
and core/feedback/token_reweight.py, core/feedback/cache_shift.py)."""

import pytest
import torch

from consensus import Budget, CacheShift, Ensemble, Scorer, TokenReweight, TopK, TraceWriter, read_trace, run_consensus
from consensus.core.feedback import Feedback
from consensus.core.feedback.cache_shift import steering_loss
from consensus.core.feedback.token_reweight import TokenChoice
from consensus.generators.text.steering import SteeringConfig, TokenSteps, steer

PROMPT = "Question: What is 2 + 3?\nAnswer:"


class Prefers(Scorer):
    """Energy −1 for candidates that pass ``test``, else 0; remembers every batch it scored."""

    modality = "text"

    def __init__(self, test, name="prefers"):
        self.test, self._name, self.calls = test, name, []

    @property
    def name(self):
        return self._name

    def energy(self, candidates, condition):
        self.calls.append(list(candidates))
        return torch.tensor([-1.0 if self.test(i, c) else 0.0 for i, c in enumerate(candidates)])


class KeepOnly(Feedback):
    """Keeps the given candidates of those still alive: a form that narrows the field without energies."""

    def __init__(self, keep):
        self.keep = keep

    def __call__(self, proposals, energies, context):
        proposals.survivors = [i for i in proposals.alive() if i in self.keep]
        return {"kept": proposals.survivors}


class Returns(Scorer):
    modality = "text"

    def __init__(self, make):
        self.make = make

    def energy(self, candidates, condition):
        return self.make(len(candidates))


def test_lm_alone_is_greedy_decoding(tiny_lm):
    answer = steer(tiny_lm, PROMPT, None, None, SteeringConfig(max_new_tokens=5, stop=()))
    greedy = tiny_lm.sample([PROMPT], 1, max_new_tokens=5, temperature=0)[0][0]
    assert answer.text == greedy.text.strip() and answer.tokens == 5 and answer.ended == "length"


@pytest.mark.parametrize("form", [TokenReweight(temperature=0.05),
                                  CacheShift(temperature=0.05, steps=5, step_size=2.0, kl_weight=0.0, fusion=1.0)])
def test_a_scorer_that_prefers_one_token_makes_it_win(tiny_lm, form):
    underdog = Prefers(lambda i, text: i == 7)  # candidates come in the LM's order: the last is its least likely of 8
    seen = []
    run_consensus(TokenSteps(tiny_lm, PROMPT, top_k=8, stop=()), Ensemble([underdog]), None, feedback=form,
                  budget=Budget(iterations=1), callback=seen.append)
    done = seen[0]["feedback"][form.name]
    assert done["chosen"] == 7 and seen[0]["survivors"] == [7] and done["lm_probs"][7] < done["lm_probs"][0]
    assert done["final_probs"][7] > done["lm_probs"][7]


@pytest.mark.parametrize("form", [TokenReweight(temperature=0.05),
                                  CacheShift(temperature=0.05, steps=2, step_size=2.0, kl_weight=0.0, fusion=1.0)])
def test_a_token_form_chooses_among_the_survivors_the_forms_before_it_left(tiny_lm, form):
    """TopK keeps the four lowest energies and KeepOnly narrows them to candidates 2 and 3; the token form then
    picks one of those two, though candidate 0 is both the LM's first choice and one the scorers prefer."""
    underdog = Prefers(lambda i, text: i in (0, 2, 3))
    seen = []
    chain = [TopK(4), KeepOnly([2, 3]), form]
    run_consensus(TokenSteps(tiny_lm, PROMPT, top_k=8, stop=()), Ensemble([underdog]), None, feedback=chain,
                  budget=Budget(iterations=1), callback=seen.append)
    assert seen[0]["feedback"][form.name]["chosen"] in (2, 3) and seen[0]["survivors"] in ([2], [3])


def test_two_forms_of_one_class_in_a_chain_are_both_recorded(tiny_lm, tmp_path):
    trace = TraceWriter(tmp_path / "trace.jsonl")
    chain = [TopK(4), TopK(2), TokenReweight(temperature=0.05)]
    run_consensus(TokenSteps(tiny_lm, PROMPT, top_k=8, stop=()), Ensemble([Prefers(lambda i, text: i > 3)]), None,
                  feedback=chain, budget=Budget(iterations=1), trace=trace)
    trace.close()
    [line] = list(read_trace(tmp_path / "trace.jsonl"))
    assert list(line["feedback"]) == ["TopK", "TopK#2", "TokenReweight"]
    assert len(line["feedback"]["TopK"]["kept"]) == 4 and len(line["feedback"]["TopK#2"]["kept"]) == 2
    assert line["feedback"]["TokenReweight"]["chosen"] in line["feedback"]["TopK#2"]["kept"]


def test_a_form_given_a_step_without_its_hooks_is_refused_at_the_first_iteration_naming_both(tiny_lm):
    from consensus import Guidance
    from consensus.generators.text.steps import Sampling, SolutionSteps

    class Smooth(Prefers):  # declares a gradient, so Guidance's own check of the ensemble passes
        differentiable = True

    ensemble = Ensemble([Smooth(lambda i, text: i == 0)])
    with pytest.raises(TypeError, match="feedback Guidance acts through DenoisingHooks, which the step TokenSteps"):
        run_consensus(TokenSteps(tiny_lm, PROMPT, top_k=4, stop=()), ensemble, None, feedback=[TopK(2), Guidance()],
                      budget=Budget(iterations=2))
    with pytest.raises(TypeError, match="feedback TokenReweight acts through TokenHooks, which the step SolutionSteps"):
        run_consensus(SolutionSteps(tiny_lm, 2, lambda question: question, Sampling(max_new_tokens=4)), ensemble,
                      PROMPT, feedback=TokenReweight(), budget=Budget(iterations=1))


def test_the_cache_shift_lowers_the_loss_it_optimises(tiny_lm):
    steps = TokenSteps(tiny_lm, PROMPT, top_k=8)
    proposals = steps(None, None, torch.Generator())
    hooks = proposals.hooks
    target = torch.softmax(torch.arange(8.0), 0)  # favours the LM's least likely candidates
    form = CacheShift(steps=4, step_size=0.5, kl_weight=0.2)
    before = steering_loss(hooks.lm_logprobs, hooks.lm_logprobs, hooks.candidate_ids, target, 0.2)
    shifted = hooks.keep_shift(form.optimise(hooks, target))
    after = steering_loss(shifted, hooks.lm_logprobs, hooks.candidate_ids, target, 0.2)
    assert after < before - 1e-3


def test_scorers_see_the_text_so_far_and_decide_when_to_stop(tiny_lm):
    scorer = Prefers(lambda i, text: "\x00never" in text)
    answer = steer(tiny_lm, PROMPT, Ensemble([scorer]), None, SteeringConfig([TokenReweight()], top_k=4,
                                                                              max_new_tokens=3))
    assert len(scorer.calls) == len(answer.steps) <= 3
    for step, calls in zip(answer.steps, scorer.calls):
        assert step.candidates == calls and len(calls) == 4
        assert isinstance(step.choice, TokenChoice) and len(step.choice.final_probs) == 4
    assert answer.seconds["scorers"] >= 0 and answer.seconds["lm"] > 0


def test_bad_scorers_and_settings_get_clear_errors(tiny_lm):
    config = SteeringConfig([TokenReweight()], top_k=4)
    with pytest.raises(ValueError, match="needs an ensemble"):
        steer(tiny_lm, PROMPT, None, None, config)
    with pytest.raises(ValueError, match="must return a tensor of shape"):
        steer(tiny_lm, PROMPT, Ensemble([Returns(lambda n: torch.zeros(2))]), None, config)
    with pytest.raises(ValueError, match="NaN/inf"):
        steer(tiny_lm, PROMPT, Ensemble([Returns(lambda n: torch.full((n,), float("nan")))]), None, config)
    with pytest.raises(ValueError, match="non-finite"):
        steer(tiny_lm, PROMPT, Ensemble([Returns(lambda n: torch.full((n,), float("nan")))], nonfinite="drop"), None,
              config)
    with pytest.raises(TypeError, match="'beam' is not a feedback form"):
        SteeringConfig(["beam"])
    with pytest.raises(ValueError, match=r"no form in \['TopK'\] picked a token"):
        steer(tiny_lm, PROMPT, Ensemble([Prefers(lambda i, text: i == 1)]), None, SteeringConfig([TopK(1)], top_k=4))
    with pytest.raises(ValueError, match="temperature > 0"):
        TokenReweight(temperature=0)
