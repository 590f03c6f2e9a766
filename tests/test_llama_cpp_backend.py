"""The llama.cpp backend on the real offline GGUF (and the GSM adapter as a GGUF LoRA), against llama.cpp's own
high-level API and against the torch path over the same weights; the dtype the torch path picks per CPU."""

import json

import pytest
import torch

from consensus.cli import main
from consensus.eval.harness import read_results
from consensus.generators.text.causal_lm import cpu_has_native_bfloat16, resolve_dtype
from consensus.tasks.math.data import gsm_symbolic
from consensus.tasks.math.prompt import format_prompt

PROMPT = "Question: What is 2 + 3?\nAnswer:\n"


def test_greedy_matches_llama_cpps_own_completion(llama_gemma):
    from llama_cpp import Llama

    from consensus.zoo.gemma import gemma_gguf
    from consensus.zoo.text_generators import load_text_generator

    base = load_text_generator(backend="llama.cpp")
    reference = Llama(model_path=str(gemma_gguf()), n_ctx=512, n_threads=2, verbose=False)
    expected = reference.create_completion(PROMPT, max_tokens=10, temperature=0.0)["choices"][0]["text"]
    [[ours]] = base.sample([PROMPT], 1, max_new_tokens=10, temperature=0.0)
    assert ours.text == expected and ours.tokens == 10 and ours.ended == "length"


def test_the_adapter_runs_as_the_torch_path_runs_it_merged(llama_gemma, gemma_float32):
    """The GSM LoRA converted to a GGUF LoRA gives what the torch path gives with the adapter merged into the same
    (dequantised) weights: the same greedy solution, and per-token log-probabilities within llama.cpp's rounding
    (it quantises activations to 8 bits for the 4-bit weights' dot products)."""
    problems = gsm_symbolic("train", 2, seed=3)
    prompts = [format_prompt(p.question) for p in problems]
    ours = [o[0].text for o in llama_gemma.sample(prompts, 1, max_new_tokens=24, temperature=0.0)]
    theirs = [o[0].text for o in gemma_float32.sample(prompts, 1, max_new_tokens=24, temperature=0.0)]
    assert ours == theirs
    solutions = [p.solution for p in problems]
    for a, b in zip(llama_gemma.continuation_logprobs(prompts, solutions),
                    gemma_float32.continuation_logprobs(prompts, solutions)):
        assert a.shape == b.shape and abs(a.mean() - b.mean()) < 0.1
    without = type(llama_gemma)(llama_gemma.model_path)  # the same GGUF without the adapter: the training format
    for a, b in zip(llama_gemma.continuation_logprobs(prompts, solutions),  # is far less likely
                    without.continuation_logprobs(prompts, solutions)):
        assert a.mean() > b.mean() + 0.3


def test_sampled_texts_carry_the_logprobs_teacher_forcing_gives(llama_gemma):
    out = llama_gemma.sample([PROMPT], 8, max_new_tokens=10, temperature=1.0, top_k=3, stop=["\n\n", "."],
                             generator=torch.Generator().manual_seed(0))[0]
    texts = [c.text for c in out if c.text]
    carried = [t for t in texts if llama_gemma._carried(PROMPT, t) is not None]
    assert len(carried) >= len(texts) // 2, "sampled texts carry their logprobs"
    shared = llama_gemma.continuation_logprobs([PROMPT] * len(carried), carried)
    fresh = llama_gemma.continuation_logprobs([PROMPT] * len(carried), [str(t) for t in carried])
    # A token decoded alone and the same token in a prefill go through different kernels of llama.cpp, whose 8-bit
    # activations round them apart: most tokens agree to hundredths, an uncertain one by up to a nat or so (seen:
    # " is" after "5\n5" at -0.15 decoded, -0.20 to -0.79 in prefills of other lengths, -0.63 in float32 torch).
    # Tokens off by one place would differ by nats on most tokens.
    for a, b in zip(shared, fresh):
        gap = (a - b).abs()
        assert a.shape == b.shape and gap.median() < 0.05 and int((gap > 0.5).sum()) <= 1
        assert abs(a.mean() - b.mean()) < 0.2


def test_step_level_prompts_start_from_the_kept_partial_solutions(llama_gemma):
    """A row that ends keeps its sequence; the next call's prompt that extends it reads only the new tokens, and a
    call keeps only the sequences its prompts start from."""
    lm = llama_gemma
    lm.prefix_cache.clear()
    [lines] = lm.sample([PROMPT], 4, max_new_tokens=8, temperature=1.0, stop=["\n"],
                        generator=torch.Generator().manual_seed(1))
    before = lm.prefix_cache.reused_tokens
    parents = [c.with_stop or c.text for c in lines[:2]]
    lm.sample([PROMPT + p for p in parents], 2, max_new_tokens=4, temperature=1.0,
              generator=torch.Generator().manual_seed(2))
    prompt_tokens = len(lm.tokenize(PROMPT))
    assert lm.prefix_cache.reused_tokens - before >= 2 * prompt_tokens
    assert lm.prefix_cache.sequences <= 2 + 2 * 2 + 2  # the prompts, their rows, and at most the two sources


def test_a_cleared_cache_draws_what_a_fresh_generator_draws(llama_gemma):
    """What a seed draws does not depend on what ran before, once the kept sequences are forgotten (as the harness
    does at each batch of items): a resumed run draws what an uninterrupted one drew."""
    def draw():
        llama_gemma.prefix_cache.clear()
        return [c.text for c in llama_gemma.sample([PROMPT, "hello"], 3, max_new_tokens=12, temperature=1.0,
                                                   generator=torch.Generator().manual_seed(7))[1]]

    first = draw()
    llama_gemma.sample(["something else entirely"], 5, max_new_tokens=20, temperature=1.0)
    assert draw() == first


def test_a_full_kv_cache_and_too_many_rows_are_clear_errors():
    from consensus.generators.text.llama_cpp import LlamaCppGenerator
    from consensus.zoo.gemma import gemma_gguf

    small = LlamaCppGenerator(gemma_gguf(), n_ctx=256, n_seq_max=8)
    with pytest.raises(RuntimeError, match="KV cache is full"):
        small.sample([PROMPT * 3], 6, max_new_tokens=60, temperature=1.0)
    with pytest.raises(ValueError, match="the whole 256-token context"):
        small.sample([PROMPT * 40], 1, max_new_tokens=4)
    with pytest.raises(RuntimeError, match="every llama.cpp sequence is in use"):
        small.sample([PROMPT], 9, max_new_tokens=2)
    with pytest.raises(FileNotFoundError, match="no GGUF model"):
        LlamaCppGenerator("no-such-model.gguf")


def test_the_math_cli_records_its_backend_and_resumes_on_it(tmp_path):
    """A run on llama.cpp resumes on llama.cpp and loses and repeats no problem; its records are those of an
    uninterrupted run; a run of another backend into its folder is refused."""
    argv = ["math", "--source", "chain_sum", "--method", "solution", "--n", "2", "--backend", "llama.cpp"]
    main([*argv, "--size", "2", "--out", str(tmp_path / "resumed")])
    main([*argv, "--size", "3", "--out", str(tmp_path / "resumed")])
    main([*argv, "--size", "3", "--out", str(tmp_path / "whole")])
    drop = ("seconds", "settings")
    records = [[{k: v for k, v in r.items() if k not in drop} | {"greedy": {k: v for k, v in r["greedy"].items()
                                                                              if k != "seconds"}}
                for r in read_results(tmp_path / run / "results.jsonl")] for run in ("resumed", "whole")]
    assert len(records[0]) == 3 and records[0] == records[1]
    manifest = json.loads((tmp_path / "whole" / "run.json").read_text())
    assert manifest["settings"]["generator"] == {"backend": "llama.cpp"}
    with pytest.raises(SystemExit) as exit_info:
        main([*argv[:-1], "torch", "--size", "3", "--out", str(tmp_path / "whole")])
    assert exit_info.value.code == 2


def test_the_torch_path_takes_bfloat16_only_where_the_cpu_computes_it(tmp_path, monkeypatch):
    avx2_only = tmp_path / "cpuinfo-epyc"
    avx2_only.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma f16c\n")
    with_bf16 = tmp_path / "cpuinfo-sapphire-rapids"
    with_bf16.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx avx2 avx512f avx512_bf16 amx_bf16\n")
    arm = tmp_path / "cpuinfo-neoverse"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\n")
    assert not cpu_has_native_bfloat16(avx2_only) and cpu_has_native_bfloat16(with_bf16)
    assert cpu_has_native_bfloat16(arm) and not cpu_has_native_bfloat16(tmp_path / "missing")
    from consensus.generators.text import causal_lm

    monkeypatch.setattr(causal_lm, "cpu_has_native_bfloat16", lambda: False)
    assert resolve_dtype("auto") == torch.float32
    from consensus.zoo.gemma import load_gemma

    assert load_gemma().model.dtype == torch.float32  # the real model, in the dtype the CPU computes
    monkeypatch.setattr(causal_lm, "cpu_has_native_bfloat16", lambda: True)
    assert resolve_dtype("auto") == torch.bfloat16 and resolve_dtype("float32") == torch.float32


def test_hidden_states_are_the_torch_paths_within_llamas_rounding(llama_gemma, gemma_float32):
    """The last layer's states at a continuation's tokens: as the torch path reads them (the same directions, within
    llama.cpp's 8-bit activations), and exactly the same whether a pair is read alone, beside others or while its
    prompt is kept from an earlier call; an empty continuation has none."""
    problems = gsm_symbolic("train", 2, seed=3)
    prompts = [format_prompt(p.question) for p in problems]
    solutions = [p.solution for p in problems]
    together = llama_gemma.hidden_states(prompts + prompts[:1], solutions + [""])
    alone = llama_gemma.hidden_states(prompts[1:], solutions[1:])
    llama_gemma.sample(prompts[1:], 1, max_new_tokens=2, temperature=0.0)  # keeps the prompt
    again = llama_gemma.hidden_states(prompts[1:], solutions[1:])
    torch_path = gemma_float32.hidden_states(prompts, solutions)
    cosine = torch.nn.functional.cosine_similarity
    for ours, theirs in zip(together, torch_path):
        assert ours.shape == theirs.shape and ours.shape[1] == llama_gemma.n_embd
        assert cosine(ours, theirs).min() > 0.9
    assert together[2].shape == (0, llama_gemma.n_embd)
    assert torch.equal(together[1], alone[0]) and torch.equal(alone[0], again[0])
