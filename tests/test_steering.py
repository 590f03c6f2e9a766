"""Token-level steering on a tiny random GPT-2: the generic code paths of generators/steering.py."""

import pytest
import torch

from consensus.generators.steering import SteeredDecoder, SteeringConfig

PROMPT = "Question: What is 2 + 3?\nAnswer:"


def prefers(word: str):
    """An energy function that likes continuations containing ``word``: −1 if present, else 0."""
    calls = []

    def energy(texts):
        calls.append(list(texts))
        return torch.tensor([-1.0 if word in t else 0.0 for t in texts])

    energy.calls = calls
    return energy


def test_lm_alone_is_greedy_decoding(tiny_lm):
    answer = SteeredDecoder(tiny_lm, SteeringConfig(feedback="none", max_new_tokens=5, stop=())).decode(PROMPT)
    greedy = tiny_lm.sample([PROMPT], 1, max_new_tokens=5, temperature=0)[0][0]
    assert answer.text == greedy.text.strip() and answer.tokens == 5 and answer.ended == "length"


@pytest.mark.parametrize("feedback", ["gradient", "rescore"])
def test_a_scorer_that_prefers_one_token_makes_it_win(tiny_lm, feedback):
    config = SteeringConfig(feedback=feedback, top_k=8, temperature=0.05, steps=5, step_size=2.0, kl_weight=0.0,
                            fusion=1.0, max_new_tokens=1, stop=())

    def prefers_the_underdog(texts):  # candidates come in the LM's order: the last is its least likely of 8
        return torch.tensor([0.0] * (len(texts) - 1) + [-1.0])

    steered = SteeredDecoder(tiny_lm, config).decode(PROMPT, prefers_the_underdog)
    step = steered.steps[0]
    assert step.chosen == 7 and step.lm_probs[7] < step.lm_probs[0]
    assert step.final_probs[7] > step.lm_probs[7]


def test_the_cache_shift_lowers_the_loss_it_optimises(tiny_lm):
    decoder = SteeredDecoder(tiny_lm, SteeringConfig(top_k=8, steps=4, step_size=0.5, kl_weight=0.2))
    ids = tiny_lm.tokenizer(PROMPT, return_tensors="pt")["input_ids"]
    past, last = decoder._prefill(ids[:, :-1]), ids[:, -1:]
    with torch.no_grad():
        base, _ = decoder._step(past, last)
    candidates = base.topk(8).indices
    target = torch.softmax(torch.arange(8.0), 0)  # favours the LM's least likely candidates
    before = decoder.loss(base, base, candidates, target)
    shifted, _ = decoder._shift(past, last, base, candidates, target)
    after = decoder.loss(shifted, base, candidates, target)
    assert after < before - 1e-3


def test_scorers_see_the_text_so_far_and_decide_when_to_stop(tiny_lm):
    energy = prefers("\x00never")
    answer = SteeredDecoder(tiny_lm, SteeringConfig(feedback="rescore", top_k=4, max_new_tokens=3)).decode(
        PROMPT, energy)
    assert len(energy.calls) == len(answer.steps) <= 3
    for step, calls in zip(answer.steps, energy.calls):
        assert step.candidates == [t.strip() for t in calls] and len(calls) == 4
    assert answer.seconds["scorers"] >= 0 and answer.seconds["lm"] > 0


def test_bad_energy_functions_get_clear_errors(tiny_lm):
    decoder = SteeredDecoder(tiny_lm, SteeringConfig(feedback="rescore", top_k=4))
    with pytest.raises(ValueError, match="needs an energy function"):
        decoder.decode(PROMPT)
    with pytest.raises(ValueError, match="returned shape"):
        decoder.decode(PROMPT, lambda texts: torch.zeros(2))
    with pytest.raises(ValueError, match="non-finite"):
        decoder.decode(PROMPT, lambda texts: torch.full((len(texts),), float("nan")))
    with pytest.raises(ValueError, match="unknown feedback"):
        SteeringConfig(feedback="beam")
