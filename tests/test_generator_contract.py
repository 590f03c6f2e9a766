"""Contract of every generator adapter: the causal-LM generator on a tiny random GPT-2 and on
the real offline Gemma (its adapter-merged copy), so the generic code path is checked on two
architectures, one of them with sliding-window attention."""

import pytest
import torch

from consensus.generators import CausalLMGenerator

PROMPTS = ["Question: What is 2 + 3?\nAnswer:\n", "hello"]


@pytest.fixture(params=["tiny_lm", "gemma"])
def lm(request) -> CausalLMGenerator:
    return request.getfixturevalue(request.param)


def test_greedy_matches_transformers_generate(lm):
    ours = lm.sample(PROMPTS, 1, max_new_tokens=8, temperature=0.0)
    for prompt, [completion] in zip(PROMPTS, ours):
        enc = lm.encode([prompt])
        ref = lm.model.generate(**enc, max_new_tokens=8, do_sample=False, pad_token_id=lm.tokenizer.pad_token_id)
        ref_ids = ref[0, enc["input_ids"].shape[1]:].tolist()
        eos = next((i for i, t in enumerate(ref_ids) if t in lm.eos_ids), None)
        text = lm.tokenizer.decode(ref_ids[:eos], skip_special_tokens=True)
        assert completion.text == text


def test_n_samples_per_prompt_with_token_accounting(lm):
    out = lm.sample(PROMPTS, 3, max_new_tokens=5, temperature=1.0, generator=torch.Generator().manual_seed(0))
    assert [len(o) for o in out] == [3, 3]
    for completion in (c for o in out for c in o):
        assert 1 <= completion.tokens <= 5 and completion.ended in ("eos", "stop", "length")
        assert completion.ended != "length" or completion.tokens == 5


def test_shared_prefill_equals_separate_prompts(lm):
    """Repeating the prefilled cache n times must give what n separate greedy runs give."""
    shared = lm.sample(PROMPTS, 2, max_new_tokens=6, temperature=0.0)
    alone = [lm.sample([p], 1, max_new_tokens=6, temperature=0.0)[0][0].text for p in PROMPTS]
    assert [[c.text for c in o] for o in shared] == [[a, a] for a in alone]


def test_seeded_sampling_is_reproducible(lm):
    def draw(seed):
        out = lm.sample(PROMPTS[:1], 4, max_new_tokens=6, temperature=1.0, top_k=50,
                        generator=torch.Generator().manual_seed(seed))
        return [c.text for c in out[0]]

    assert draw(1) == draw(1)


def test_stop_string_cuts_and_is_reported(lm):
    free = lm.sample(PROMPTS[:1], 1, max_new_tokens=12, temperature=0.0)[0][0]
    assert len(free.text) >= 3  # room to place a stop string inside the text
    stop = free.text[1:3]
    cut = lm.sample(PROMPTS[:1], 1, max_new_tokens=12, temperature=0.0, stop=[stop])[0][0]
    assert cut.ended == "stop" and cut.text == free.text[:free.text.find(stop)]
    assert cut.tokens <= free.tokens


def test_continuation_logprobs_match_a_full_forward(lm):
    prompt, continuation = "hello", " world"
    [lp] = lm.continuation_logprobs([prompt], [continuation])
    ids = lm.tokenizer(prompt + continuation, return_tensors="pt")["input_ids"]
    n_prompt = len(lm.tokenizer(prompt)["input_ids"])
    with torch.no_grad():
        logits = lm.model(ids.to(lm.device)).logits.float()
    ref = torch.log_softmax(logits[0, :-1], -1).gather(-1, ids[0, 1:, None].to(lm.device))[n_prompt - 1:, 0]
    assert lp.shape == ref.shape and torch.allclose(lp, ref.cpu(), atol=2e-2)


def test_bad_arguments_are_refused(lm):
    with pytest.raises(ValueError, match="at least one prompt"):
        lm.sample([], 1)
    with pytest.raises(ValueError, match="top_p"):
        lm.sample(PROMPTS, 1, top_p=0.0)


def test_missing_model_names_the_fix(tmp_path):
    with pytest.raises(OSError, match="local directory"):
        CausalLMGenerator.from_pretrained(str(tmp_path / "no-such-model"))
