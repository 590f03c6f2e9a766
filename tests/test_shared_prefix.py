"""Cascade attention: the rows sampled from one prompt read its keys and values from one copy
(``consensus.generators.text.shared_prefix``), and draw exactly what they draw from n copies."""

from __future__ import annotations

import pytest
import torch

from consensus.generators.text import CausalLMGenerator
from test_prefix_cache import tiny_gemma  # tests/ is on sys.path under pytest

PROMPTS = ["Question: What is 2 + 3?\nAnswer:\n", "hello world. The answer is"]


def draws(lm: CausalLMGenerator, prompts=PROMPTS, n: int = 4, tokens: int = 12, **options) -> list:
    out = lm.sample(prompts, n, max_new_tokens=tokens, temperature=1.0, generator=torch.Generator().manual_seed(0),
                    **options)
    return [(c.text, c.tokens, c.ended, getattr(c.text, "logprobs", None)) for o in out for c in o]


def assert_same(a: list, b: list, atol: float) -> None:
    for (text_a, tokens_a, ended_a, lp_a), (text_b, tokens_b, ended_b, lp_b) in zip(a, b, strict=True):
        assert (text_a, tokens_a, ended_a) == (text_b, tokens_b, ended_b)
        assert (lp_a is None) == (lp_b is None) and (lp_a is None or torch.allclose(lp_a, lp_b, atol=atol))


@pytest.mark.parametrize("model", ["gpt2", "gemma", "gemma, window crossed while drawing"])
def test_rows_read_one_copy_of_their_prompt_and_draw_what_n_copies_draw(model, tiny_lm, tiny_tokenizer):
    # A 14-token window: the 11- and 5-token prompts fit in it, and 12 drawn tokens carry the rows past it, so
    # the prompt's first columns leave the window while the rows draw.
    net = {"gpt2": tiny_lm.model, "gemma": tiny_gemma(tiny_tokenizer, 128),
           "gemma, window crossed while drawing": tiny_gemma(tiny_tokenizer, 14)}[model]
    shared = CausalLMGenerator(net, tiny_tokenizer, prefix_cache_bytes=0)
    copies = CausalLMGenerator(net, tiny_tokenizer, prefix_cache_bytes=0, shared_prompt_attention=False)
    assert shared.shares_prompts and not copies.shares_prompts
    calls = []
    hook = net.register_forward_pre_hook(lambda _, args, kwargs: calls.append("shared_prefix" in kwargs),
                                         with_kwargs=True)
    try:
        with_one_copy = draws(shared)
    finally:
        hook.remove()
    assert calls[0] is False and all(calls[1:]), "the prefill reads the prompts, every decode step the one copy"
    assert_same(with_one_copy, draws(copies), atol=1e-5)
    assert_same(draws(shared, stop=("\n",)), draws(copies, stop=("\n",)), atol=1e-5)  # rows ending early


def test_a_plain_forward_pass_is_unchanged_by_the_installed_attention(tiny_tokenizer):
    from consensus.generators.text.shared_prefix import NAME

    net = tiny_gemma(tiny_tokenizer, 128)
    ids = tiny_tokenizer(PROMPTS, return_tensors="pt", padding=True)
    with torch.no_grad():
        before = net(**ids).logits
        CausalLMGenerator(net, tiny_tokenizer)  # installs the shared-prefix attention on the model
        assert net.config._attn_implementation == NAME
        assert torch.equal(net(**ids).logits, before)


def test_real_gemma_draws_the_same_with_one_copy_of_the_prompt(gemma_float32):
    lm = gemma_float32
    copies = CausalLMGenerator(lm.model, lm.tokenizer, prefix_cache_bytes=0, shared_prompt_attention=False)
    prompts = ["Question: Tom has 3 apples and buys 4 more. How many apples does he have?\nAnswer:\n",
               "Question: A box holds 6 eggs. How many eggs are in 5 boxes?\nAnswer:\n"]
    assert lm.shares_prompts
    assert_same(draws(lm, prompts, n=3, tokens=16), draws(copies, prompts, n=3, tokens=16), atol=1e-3)
