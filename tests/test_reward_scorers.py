"""Reward models and process reward models by name, on tiny randomly initialised models built from configs (the
hub is out of reach here): the chat template, each head, the step aggregations, truncation, --scorer by name."""

import math

import pytest
import torch

from consensus import read_trace
from consensus.cli import main
from consensus.scorers.text.reward import (ProcessRewardScorer, RewardModelScorer, aggregate_steps, conversation)

TEMPLATE = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
QUESTION = "What is 2 + 3?"
SOLUTIONS = ["2 + 3 = 5\n#### 5", "2 + 3 = 6\n#### 6", "The answer is 12."]


def _tokenizer(tiny_tokenizer, template=TEMPLATE):
    import copy

    tokenizer = copy.deepcopy(tiny_tokenizer)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<extra_0>", "ки"]})
    tokenizer.chat_template = template
    return tokenizer


def _config(tokenizer, **kwargs):
    from transformers import GPT2Config

    return GPT2Config(n_layer=1, n_head=2, n_embd=16, n_positions=512, vocab_size=len(tokenizer),
                      pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, **kwargs)


@pytest.fixture(scope="module")
def reward_model_folder(tiny_tokenizer, tmp_path_factory):
    from transformers import GPT2ForSequenceClassification

    torch.manual_seed(0)
    tokenizer = _tokenizer(tiny_tokenizer)
    folder = tmp_path_factory.mktemp("tiny-rm")
    GPT2ForSequenceClassification(_config(tokenizer, num_labels=1)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def prm_folder(tiny_tokenizer, tmp_path_factory):
    from transformers import GPT2ForTokenClassification

    torch.manual_seed(1)
    tokenizer = _tokenizer(tiny_tokenizer)
    folder = tmp_path_factory.mktemp("tiny-prm")
    GPT2ForTokenClassification(_config(tokenizer, num_labels=2)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _logits(model, tokenizer, text):
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0].float(), ids


def test_the_reward_model_reads_the_pair_in_its_chat_template_and_its_energy_is_minus_the_reward(
        reward_model_folder):
    scorer = RewardModelScorer(str(reward_model_folder), dtype="float32", batch_size=2)
    templated = conversation(scorer.tokenizer, QUESTION, SOLUTIONS[0])
    assert templated == f"<|user|>{QUESTION}\n<|assistant|>{SOLUTIONS[0]}\n"
    expected = [-float(_logits(scorer.model, scorer.tokenizer, conversation(scorer.tokenizer, QUESTION, s))[0][0])
                for s in SOLUTIONS]
    assert scorer.energy(SOLUTIONS, QUESTION).tolist() == pytest.approx(expected, abs=1e-5)  # batched, padded
    assert scorer.name == f"RewardModel[{reward_model_folder}]"


def test_without_a_chat_template_the_question_and_solution_are_two_lines(tiny_tokenizer):
    assert conversation(_tokenizer(tiny_tokenizer, template=None), "Q?", "A.") == "Q?\nA."


def test_a_two_label_head_gives_the_log_odds(tiny_tokenizer):
    from transformers import GPT2ForSequenceClassification

    tokenizer = _tokenizer(tiny_tokenizer)
    model = GPT2ForSequenceClassification(_config(tokenizer, num_labels=2))
    scorer = RewardModelScorer(model, tokenizer)
    logits = _logits(model, tokenizer, conversation(tokenizer, QUESTION, SOLUTIONS[1]))[0]
    assert scorer.energy(SOLUTIONS[1:2], QUESTION).item() == pytest.approx(-float(logits[1] - logits[0]), abs=1e-5)
    with pytest.raises(ValueError, match="1 output"):
        RewardModelScorer(GPT2ForSequenceClassification(_config(tokenizer, num_labels=3)), tokenizer)


@pytest.mark.parametrize("how, expected", [("last", 0.5), ("min", 0.2), ("prod", 0.9 * 0.2 * 0.5),
                                           ("mean", (0.9 + 0.2 + 0.5) / 3)])
def test_step_aggregations(how, expected):
    assert aggregate_steps([0.9, 0.2, 0.5], how) == pytest.approx(expected)
    assert aggregate_steps([], how) == 0.0


@pytest.mark.parametrize("how", ["last", "min", "prod", "mean"])
def test_a_prm_reads_p_right_at_each_step_tag_and_aggregates(prm_folder, how):
    scorer = ProcessRewardScorer(str(prm_folder), aggregate=how, dtype="float32")
    assert scorer.tagged("2 + 3 = 5\n\n#### 5\n") == "2 + 3 = 5<extra_0>#### 5<extra_0>"
    energies = scorer.energy(SOLUTIONS, QUESTION)
    for solution, energy in zip(SOLUTIONS, energies.tolist()):
        logits, ids = _logits(scorer.model, scorer.tokenizer,
                              conversation(scorer.tokenizer, QUESTION, scorer.tagged(solution)))
        at = [i for i, t in enumerate(ids) if t == scorer.tag_id]
        steps = torch.softmax(logits[at], -1)[:, 1].tolist()
        assert len(steps) == len([s for s in solution.split("\n") if s.strip()])
        assert energy == pytest.approx(-math.log(aggregate_steps(steps, how)), abs=1e-5)


def test_a_causal_lm_prm_chooses_between_its_good_and_bad_tokens(tiny_tokenizer):
    from transformers import GPT2LMHeadModel

    tokenizer = _tokenizer(tiny_tokenizer)
    model = GPT2LMHeadModel(_config(tokenizer))
    scorer = ProcessRewardScorer(model, tokenizer, head="lm", step_tag="ки", aggregate="prod")
    good, bad = (tokenizer("+", add_special_tokens=False)["input_ids"][0],
                 tokenizer("-", add_special_tokens=False)["input_ids"][0])
    logits, ids = _logits(model, tokenizer, conversation(tokenizer, QUESTION, scorer.tagged(SOLUTIONS[0])))
    at = [i for i, t in enumerate(ids) if t == scorer.tag_id]
    p = torch.softmax(logits[at][:, [good, bad]], -1)[:, 0]
    assert scorer.energy(SOLUTIONS[:1], QUESTION).item() == pytest.approx(-float(p.log().sum()), abs=1e-5)


def test_a_long_input_is_cut_from_the_left_with_a_warning(reward_model_folder):
    scorer = RewardModelScorer(str(reward_model_folder), dtype="float32", max_length=12)
    with pytest.warns(UserWarning, match="cut from the left"):
        energies = scorer.energy([SOLUTIONS[0] * 5, SOLUTIONS[1]], QUESTION)
    assert torch.isfinite(energies).all()
    text = conversation(scorer.tokenizer, QUESTION, SOLUTIONS[0] * 5)
    assert scorer._encode([text])[0] == scorer.tokenizer(text, add_special_tokens=False)["input_ids"][-12:]


@pytest.mark.parametrize("kwargs, message", [
    ({"aggregate": "max"}, "unknown aggregate"), ({"step_tag": "not one token"}, "one token"),
    ({"head": "value"}, "unknown head"), ({"step_separator": ""}, "must not be empty"),
])
def test_a_prm_refuses_what_it_cannot_read(prm_folder, kwargs, message):
    with pytest.raises(ValueError, match=message):
        ProcessRewardScorer(str(prm_folder), **kwargs)


def test_every_cli_takes_a_reward_model_by_name(prm_folder, tmp_path, capsys):
    folder = tmp_path / "run"
    main(["math", "--source", "chain_sum", "--size", "1", "--n", "2", "--baseline", "none",
          "--scorer", f"prm:{prm_folder}:0.5", "--out", str(folder)])
    [record] = list(read_trace(folder / "trace.jsonl"))
    assert f"ProcessReward[{prm_folder}]" in record["energies"]["per_scorer"]
    with pytest.raises(SystemExit) as stop:
        main(["math", "--source", "chain_sum", "--size", "1", "--scorer", f"rm:{tmp_path / 'nothing'}",
              "--out", str(tmp_path / "x")])
    assert stop.value.code == 2 and "cannot load the reward model" in capsys.readouterr().err
