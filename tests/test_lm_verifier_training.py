"""The LM verifier's training pieces (scripts/train_lm_verifier.py) and the stacked LoRA that carries its adapter onto
the generator's (consensus.generators.text.stacked_lora), on a tiny random Gemma 3: the top layers run from the
cached bottom states give the whole model's states, the saved LoRA gives the trained model's states once loaded on
the whole model, and a stacked adapter's update is the sum of its parts."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from consensus.generators.text.stacked_lora import stack_loras
from consensus.scorers.text.lm_verifier import TARGET_MODULES, solution_features

SCRIPT = Path(__file__).parents[1] / "scripts" / "train_lm_verifier.py"
QUESTION = "Question: What is 2 + 3?\nAnswer:"
SOLUTIONS = [" 2 + 3 = 5\n#### 5", " 2 + 3 = 6\n#### 6", " The answer is 12.\n#### 12"]


@pytest.fixture(scope="module")
def training():
    spec = importlib.util.spec_from_file_location("train_lm_verifier", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_generator(folder, tokenizer, adapter=None):
    from transformers import Gemma3ForCausalLM

    from consensus.generators import CausalLMGenerator

    model = Gemma3ForCausalLM.from_pretrained(folder, dtype=torch.float32)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    return CausalLMGenerator(model.eval(), tokenizer, name="tiny-gemma")


def top_features(training, lm, verifier):
    """The trainable top's features of SOLUTIONS, from the bottom layers' states as the script caches them."""
    ids, mask, solution_tokens = lm._pairs([QUESTION] * len(SOLUTIONS), SOLUTIONS)
    with torch.no_grad():
        states = lm.model.model(input_ids=ids, attention_mask=mask, position_ids=training.positions(mask),
                                output_hidden_states=True).hidden_states[verifier.first]
        return verifier.features(states, mask, solution_tokens)


def test_the_top_layers_from_the_cached_bottom_states_give_the_whole_models_states(training, tiny_gemma,
                                                                                  tiny_tokenizer):
    lm = tiny_generator(tiny_gemma, tiny_tokenizer)
    verifier = training.TopVerifier(lm, top_layers=1, rank=2).eval()  # the LoRA starts as no change
    want = solution_features(lm.hidden_states([QUESTION] * len(SOLUTIONS), SOLUTIONS))
    torch.testing.assert_close(top_features(training, lm, verifier), want, atol=1e-5, rtol=1e-5)


def test_the_saved_lora_loaded_on_the_whole_model_gives_the_trained_tops_states(training, tiny_gemma,
                                                                               tiny_tokenizer, tmp_path):
    lm = tiny_generator(tiny_gemma, tiny_tokenizer)
    verifier = training.TopVerifier(lm, top_layers=1, rank=2).eval()
    torch.manual_seed(1)
    with torch.no_grad():
        for name, parameter in verifier.top.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.5)  # as training leaves it: a real change to the states
    trained = top_features(training, lm, verifier)
    lora = verifier.lora_state()
    assert {k.split(".layers.")[1].split(".")[0] for k in lora} == {"1"}  # the whole model's numbering
    assert training.save_adapter(lora, 2, tmp_path / "adapter") == [1]
    loaded = tiny_generator(tiny_gemma, tiny_tokenizer, adapter=tmp_path / "adapter")
    got = solution_features(loaded.hidden_states([QUESTION] * len(SOLUTIONS), SOLUTIONS))
    assert not torch.allclose(got, solution_features(lm.hidden_states([QUESTION] * len(SOLUTIONS), SOLUTIONS)))
    torch.testing.assert_close(got, trained, atol=2e-3, rtol=2e-3)  # the adapter is saved in float16


def random_adapter(base, out, rank, alpha, seed, **options):
    from peft import LoraConfig, get_peft_model
    from transformers import Gemma3ForCausalLM

    torch.manual_seed(seed)
    model = get_peft_model(Gemma3ForCausalLM.from_pretrained(base, dtype=torch.float32),
                           LoraConfig(r=rank, lora_alpha=alpha, init_lora_weights=False, **options))
    model.save_pretrained(out)
    return out


def merged_weights(base, adapter=None):
    from peft import PeftModel
    from transformers import Gemma3ForCausalLM

    model = Gemma3ForCausalLM.from_pretrained(base, dtype=torch.float32)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_a_stacked_adapters_update_is_the_sum_of_its_parts(tiny_gemma, tmp_path):
    """Different ranks and scales, and a second adapter on one layer's two modules only: the stacked adapter's
    merged weights are the base's plus each adapter's own update."""
    first = random_adapter(tiny_gemma, tmp_path / "first", 4, 8, seed=0, target_modules=list(TARGET_MODULES))
    second = random_adapter(tiny_gemma, tmp_path / "second", 2, 6, seed=1, target_modules=["q_proj", "down_proj"],
                            layers_to_transform=[1])
    stacked = stack_loras([first, second], tmp_path / "stacked")
    config = json.loads((stacked / "adapter_config.json").read_text())
    assert (config["r"], config["lora_alpha"], config["layers_to_transform"]) == (6, 6, None)
    base, got = merged_weights(tiny_gemma), merged_weights(tiny_gemma, stacked)
    one, two = merged_weights(tiny_gemma, first), merged_weights(tiny_gemma, second)
    changed = "model.layers.1.self_attn.q_proj.weight"
    assert not torch.equal(two[changed], base[changed])
    for key in base:
        torch.testing.assert_close(got[key], one[key] + two[key] - base[key], atol=1e-5, rtol=1e-5)


def test_stacking_refuses_adapters_it_cannot_add_up(tiny_gemma, tmp_path):
    patterned = random_adapter(tiny_gemma, tmp_path / "patterned", 2, 4, seed=0, target_modules=["q_proj"],
                               rank_pattern={"q_proj": 3})
    with pytest.raises(ValueError, match="own rank or alpha"):
        stack_loras([patterned], tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="not a PEFT adapter"):
        stack_loras([tmp_path / "nothing"], tmp_path / "out")


def test_the_within_problem_loss_is_the_chance_that_a_softmax_pick_is_wrong_and_needs_mixed_samples(training):
    logits, mixed = torch.tensor([2.0, 0.0, -1.0]), torch.tensor([1.0, 0.0, 0.0])
    one_token = torch.ones(3, 1, dtype=bool)
    pooled = torch.nn.functional.binary_cross_entropy_with_logits(logits, mixed, pos_weight=torch.tensor(2.0))
    pick_right = torch.softmax(logits, 0)[0]
    got = training.outcome_loss(logits[:, None], one_token, mixed, 2.0, within=0.5, token_level=False)
    torch.testing.assert_close(got, pooled - 0.5 * pick_right.log())
    for same in (torch.zeros(3), torch.ones(3)):  # nothing to rank: the pooled loss alone
        want = torch.nn.functional.binary_cross_entropy_with_logits(logits, same, pos_weight=torch.tensor(2.0))
        got = training.outcome_loss(logits[:, None], one_token, same, 2.0, within=0.5, token_level=False)
        torch.testing.assert_close(got, want)


def test_token_level_targets_put_each_solutions_label_on_its_tokens_and_rank_by_their_mean(training):
    """Two solutions, of 2 and 1 tokens (left-padded): the token-level loss is each solution's mean token loss; the
    within-problem term reads the mean token logit."""
    values = torch.tensor([[1.0, 3.0], [0.0, -2.0]])
    keep = torch.tensor([[True, True], [False, True]])
    right = torch.tensor([1.0, 0.0])

    def bce(x, y):
        return torch.nn.functional.binary_cross_entropy_with_logits(torch.tensor(x), torch.tensor(y))
    per_solution = ((bce(1.0, 1.0) + bce(3.0, 1.0)) / 2 + bce(-2.0, 0.0)) / 2
    got = training.outcome_loss(values, keep, right, 1.0, within=0.0, token_level=True)
    torch.testing.assert_close(got, per_solution)
    pick_right = torch.softmax(torch.tensor([2.0, -2.0]), 0)[0]
    got = training.outcome_loss(values, keep, right, 1.0, within=1.0, token_level=True)
    torch.testing.assert_close(got, per_solution - pick_right.log())
