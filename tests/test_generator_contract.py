"""Contract of every generator adapter: the causal-LM generator on a tiny random GPT-2 and on
the real offline Gemma (its adapter-merged copy), so the generic code path is checked on two
architectures, one of them with sliding-window attention; what any text backend owes, on llama.cpp too."""

import pytest
import torch

from consensus.generators import CausalLMGenerator

PROMPTS = ["Question: What is 2 + 3?\nAnswer:\n", "hello"]


@pytest.fixture(params=["tiny_lm", "gemma"])
def lm(request) -> CausalLMGenerator:
    return request.getfixturevalue(request.param)


@pytest.fixture(params=["tiny_lm", "gemma", "llama_gemma"])
def any_lm(request):
    """Every text backend that runs here: torch on two architectures, llama.cpp on the offline GGUF."""
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


def test_n_samples_per_prompt_with_token_accounting(any_lm):
    out = any_lm.sample(PROMPTS, 3, max_new_tokens=5, temperature=1.0, generator=torch.Generator().manual_seed(0))
    assert [len(o) for o in out] == [3, 3]
    for completion in (c for o in out for c in o):
        assert 1 <= completion.tokens <= 5 and completion.ended in ("eos", "stop", "length")
        assert completion.ended != "length" or completion.tokens == 5


def test_shared_prefill_equals_separate_prompts(lm):
    """Repeating the prefilled cache n times must give what n separate greedy runs give."""
    shared = lm.sample(PROMPTS, 2, max_new_tokens=6, temperature=0.0)
    alone = [lm.sample([p], 1, max_new_tokens=6, temperature=0.0)[0][0].text for p in PROMPTS]
    assert [[c.text for c in o] for o in shared] == [[a, a] for a in alone]


def test_seeded_sampling_is_reproducible(any_lm):
    def draw(seed):
        out = any_lm.sample(PROMPTS[:1], 4, max_new_tokens=6, temperature=1.0, top_k=50,
                            generator=torch.Generator().manual_seed(seed))
        return [c.text for c in out[0]]

    assert draw(1) == draw(1)


def test_stop_string_cuts_and_is_reported(any_lm):
    free = any_lm.sample(PROMPTS[:1], 1, max_new_tokens=12, temperature=0.0)[0][0]
    assert len(free.text) >= 3  # room to place a stop string inside the text
    stop = free.text[1:3]
    cut = any_lm.sample(PROMPTS[:1], 1, max_new_tokens=12, temperature=0.0, stop=[stop])[0][0]
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


def test_sampled_texts_bring_the_logprobs_teacher_forcing_gives(lm):
    """A likelihood of the sampling model reads the log-probabilities the sampler computed: the same values as
    its own forward pass (within bf16 rounding for Gemma: the sampler's incremental cache against one full pass),
    and no forward pass is run for them."""
    out = lm.sample(PROMPTS[:1], 16, max_new_tokens=10, temperature=1.0, top_k=3, stop=["\n\n", "."],
                    generator=torch.Generator().manual_seed(0))[0]
    texts = [c.text for c in out if c.text]
    carried = [t for t in texts if lm._carried(PROMPTS[0], t) is not None]
    # A real LM's samples nearly always tokenise back to their own tokens; a random one's byte soup often does not.
    assert len(carried) >= (1 if lm.name == "tiny-gpt2" else len(texts) // 2), "sampled texts carry their logprobs"
    fresh = lm.continuation_logprobs([PROMPTS[0]] * len(carried), [str(t) for t in carried])
    calls = []
    hook = lm.model.register_forward_pre_hook(lambda *_: calls.append(1))
    try:
        shared = lm.continuation_logprobs([PROMPTS[0]] * len(carried), carried)
    finally:
        hook.remove()
    assert not calls, "the carried log-probabilities need no forward pass"
    # bf16 keeps about three significant digits of logits near 20: the incremental and the full pass round
    # differently, by up to a few tenths on an unlikely token; the mean a likelihood scorer reads moves by hundredths.
    token_tolerance, mean_tolerance = (0.5, 0.05) if lm.model.dtype == torch.bfloat16 else (1e-4, 1e-4)
    for a, b in zip(shared, fresh):
        assert a.shape == b.shape and torch.allclose(a, b, atol=token_tolerance)
        assert abs(a.mean() - b.mean()) <= mean_tolerance
    edited = carried[0] + " and more"  # an edited candidate is a plain str, scored afresh
    assert type(edited) is str and lm._carried(PROMPTS[0], edited) is None
    assert lm._carried(PROMPTS[1], carried[0]) is None, "from another prompt: scored afresh"


def test_one_generator_per_prompt_draws_what_each_prompt_draws_alone(tiny_lm):
    """Items batched into one call (their prompts padded to one length) draw what each draws in a call of its own.
    In float32: Gemma in bfloat16 rounds the padded batch's attention differently and can draw otherwise (the
    prefill's logits are equal; the draws of float32 Gemma were checked equal too)."""
    lm, seeds = tiny_lm, [3, 4]
    together = lm.sample(PROMPTS, 4, max_new_tokens=8, temperature=1.0,
                         generator=[torch.Generator().manual_seed(s) for s in seeds])
    alone = [lm.sample([p], 4, max_new_tokens=8, temperature=1.0, generator=torch.Generator().manual_seed(s))[0]
             for p, s in zip(PROMPTS, seeds)]
    assert [[c.text for c in o] for o in together] == [[c.text for c in o] for o in alone]
    with pytest.raises(ValueError, match="one generator per prompt"):
        lm.sample(PROMPTS, 1, generator=[torch.Generator()])


def test_join_keeps_the_logprobs_of_an_extension_sampled_after_its_parent(tiny_lm):
    from consensus.generators.text.protocol import SampledText, join

    parent = SampledText("2 + 3", [1, 2], torch.tensor([-1.0, -2.0]), tiny_lm, "Q:")
    line = SampledText(" = 5", [3], torch.tensor([-0.5]), tiny_lm, "Q:2 + 3")
    joined = join(parent, line)
    assert isinstance(joined, SampledText) and joined == "2 + 3 = 5" and joined.token_ids == (1, 2, 3)
    assert joined.logprobs.tolist() == [-1.0, -2.0, -0.5] and joined.context == "Q:"
    stranger = SampledText(" = 5", [3], torch.tensor([-0.5]), tiny_lm, "another prompt")
    assert type(join(parent, stranger)) is str and type(join(parent, " = 5")) is str
    assert join("", line) is line


def test_bad_arguments_are_refused(any_lm):
    with pytest.raises(ValueError, match="at least one prompt"):
        any_lm.sample([], 1)
    with pytest.raises(ValueError, match="top_p"):
        any_lm.sample(PROMPTS, 1, top_p=0.0)


def test_missing_model_names_the_fix(tmp_path):
    with pytest.raises(OSError, match="local directory"):
        CausalLMGenerator.from_pretrained(str(tmp_path / "no-such-model"))


# -- The engine's steps: every generator family's step honours one contract ------------------------------------


def _tiny_denoiser():
    from test_image_guidance import scheduler, tiny_unet  # tests/ is on sys.path under pytest

    from consensus.generators.diffusion import DiffusionGenerator

    return DiffusionGenerator(tiny_unet(), scheduler("ddim"))


def _token_steps(request):
    from consensus.generators.text.steering import TokenSteps

    return TokenSteps(request.getfixturevalue("tiny_lm"), PROMPTS[0], top_k=4), None


def _solution_steps(request):
    from consensus.generators.text.steps import Sampling, SolutionSteps

    return SolutionSteps(request.getfixturevalue("tiny_lm"), 3, lambda q: q, Sampling(max_new_tokens=6)), PROMPTS[0]


def _line_steps(request):
    from consensus.generators.text.steps import LineSteps, Sampling

    return LineSteps(request.getfixturevalue("tiny_lm"), 4, lambda q: q, lambda text: "5" in text,
                     Sampling(max_new_tokens=6), max_step_tokens=6), PROMPTS[0]


def _denoising_steps(request):
    from consensus.generators.diffusion import DenoisingSteps

    return DenoisingSteps(_tiny_denoiser(), 3, 4), None


def _cem_steps(request):
    from consensus.generators.planning import CEMSteps
    from consensus.tasks.robot.scene import DEFAULT_CAMERAS, ObjectPose, SceneSpec, TabletopScene
    from consensus.tasks.robot.world_model import PickPlaceSpace, SimulatorWorldModel

    spec = SceneSpec(("red bowl", "blue mug"), (ObjectPose(0.45, -0.1), ObjectPose(0.6, 0.1)))
    scene = TabletopScene(spec, cameras=DEFAULT_CAMERAS[:1])
    request.addfinalizer(scene.close)
    return CEMSteps(SimulatorWorldModel(scene, ["front"]), PickPlaceSpace(scene), samples=4), None


STEPS = {"TokenSteps": _token_steps, "SolutionSteps": _solution_steps, "LineSteps": _line_steps,
         "DenoisingSteps": _denoising_steps, "CEMSteps": _cem_steps}
# Their contracts: above, test_image_guidance.py, test_remote_scorers.py (the remote one against the local one),
# test_llama_cpp_backend.py and test_openai_backend.py (against a real server on loopback).
ADAPTERS = {"CausalLMGenerator", "DiffusionGenerator", "RemoteTextGenerator", "LlamaCppGenerator", "OpenAIGenerator"}


@pytest.fixture(params=STEPS)
def step(request):
    return STEPS[request.param](request)


def test_a_step_proposes_candidates_and_moves_its_population_on(step):
    from consensus import Proposals

    steps, condition = step
    proposals = steps(condition, None, torch.Generator().manual_seed(0))
    assert isinstance(proposals, Proposals) and len(proposals.candidates) > 0
    assert len(proposals.complete) == len(proposals.candidates) and proposals.tokens >= 0
    proposals.survivors = [0]
    population = proposals.next_population()
    again = steps(condition, population, torch.Generator().manual_seed(1))  # the next step starts from it
    assert len(again.candidates) > 0


def test_a_step_is_reproducible_under_a_seed(step):
    steps, condition = step
    first = steps(condition, None, torch.Generator().manual_seed(3))
    steps, condition = step
    second = steps(condition, None, torch.Generator().manual_seed(3))
    if isinstance(first.candidates, torch.Tensor):
        torch.testing.assert_close(first.candidates, second.candidates)
    else:
        assert [repr(c) for c in first.candidates] == [repr(c) for c in second.candidates]


def test_every_generator_class_has_a_contract():
    import importlib
    import inspect
    import pkgutil

    import consensus.distributed
    import consensus.generators

    found = set()
    packages = [(consensus.generators.__path__, "consensus.generators."),
                (consensus.distributed.__path__, "consensus.distributed.")]
    for info in (i for path, prefix in packages for i in pkgutil.walk_packages(path, prefix)):
        module = importlib.import_module(info.name)
        found |= {name for name, c in inspect.getmembers(module, inspect.isclass)
                  if c.__module__ == module.__name__ and name.endswith(("Generator", "Steps"))
                  and not getattr(c, "_is_protocol", False)}
    missing = sorted(found - set(STEPS) - ADAPTERS)
    assert not missing, f"generators without a contract: {missing}; add them to STEPS or ADAPTERS"


def test_the_adapters_implement_their_protocols(tiny_lm, llama_gemma):
    from consensus.generators import TextGenerator
    from consensus.generators.diffusion import Denoiser
    from consensus.generators.text.openai_server import OpenAIGenerator

    assert isinstance(tiny_lm, TextGenerator) and isinstance(_tiny_denoiser(), Denoiser)
    assert isinstance(llama_gemma, TextGenerator) and isinstance(OpenAIGenerator("http://127.0.0.1:9/v1", "m"),
                                                                 TextGenerator)
