"""LLM-as-judge over any TextGenerator: −log p(yes) from the judge's log-probabilities, and, where a backend gives
none, its parsed answers with a warning."""

import math

import pytest
import torch

from consensus.generators.text.openai_server import OpenAIGenerator
from consensus.scorers.text.judge import PARSED, LLMJudge

QUESTION = "What is 2 + 3?"
SOLUTIONS = ["2 + 3 = 5\n#### 5", "2 + 3 = 6\n#### 6", "The answer is 12."]
SHORT = "{condition} {candidate} right?\nAnswer:"  # within the test server's prompt limit


def test_the_energy_is_minus_log_p_yes_over_the_pair(tiny_lm):
    judge = LLMJudge(tiny_lm)
    prompts = [judge.template.format(condition=QUESTION, candidate=s) for s in SOLUTIONS]
    yes = torch.tensor([float(t.sum()) for t in tiny_lm.continuation_logprobs(prompts, [" Yes"] * 3)])
    no = torch.tensor([float(t.sum()) for t in tiny_lm.continuation_logprobs(prompts, [" No"] * 3)])
    p_yes = yes.exp() / (yes.exp() + no.exp())
    assert judge.energy(SOLUTIONS, QUESTION).tolist() == pytest.approx((-p_yes.log()).tolist(), abs=1e-5)
    assert not judge.parsed


def test_a_verdict_is_the_first_word_read_as_yes_or_no(tiny_lm):
    judge = LLMJudge(tiny_lm)
    assert [judge.verdict(a) for a in (" Yes.", "no, because", "  YES", "Maybe", "")] == ["yes", "no", "yes", None,
                                                                                        None]


@pytest.mark.parametrize("kwargs, message", [({"template": "Is it right?"}, "{condition} and the {candidate}"),
                                             ({"yes": " Yes", "no": " yes"}, "two different words")])
def test_a_judge_refuses_a_template_or_words_it_cannot_use(tiny_lm, kwargs, message):
    with pytest.raises(ValueError, match=message):
        LLMJudge(tiny_lm, **kwargs)


def test_a_backend_without_log_probabilities_falls_back_to_parsed_answers_with_a_warning(tiny_math_model,
                                                                                        monkeypatch):
    from test_serve import KEY, Served, serve_args  # consensus serve gives no log-probabilities

    from consensus.tasks.math import serve

    monkeypatch.setenv("CONSENSUS_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    served = Served(serve.app_from_args(serve_args(tiny_math_model)))
    try:
        lm = OpenAIGenerator(served.url + "/v1", served.app.state.model, api_key=KEY, retries=0)
        judge = LLMJudge(lm, template=SHORT)
        with pytest.warns(UserWarning, match="no log-probabilities"):
            energies = judge.energy(SOLUTIONS[:2], QUESTION)
    finally:
        served.stop()
    assert judge.parsed and energies.shape == (2,)
    assert {round(e, 9) for e in energies.tolist()} <= {round(-math.log(p), 9) for p in PARSED.values()}
