"""The LM verifier (consensus.scorers.text.lm_verifier): its features and energy on the tiny random LM, the hidden
states it reads from the torch path, and its refusals."""

import json

import pytest
import torch

from consensus.scorers.text.lm_verifier import (EMPTY_ENERGY, LMVerifier, ValueHead, load_value_head,
                                                solution_features)

QUESTION = "Question: What is 2 + 3?\nAnswer:"
SOLUTIONS = [" 2 + 3 = 5\n#### 5", " 2 + 3 = 6\n#### 6", ""]


def random_head(folder, lm):
    """A head for ``lm``'s hidden size with random weights and statistics, saved as a training run saves one."""
    torch.manual_seed(0)
    features = lm.model.config.hidden_size
    head = ValueHead(features)
    head.mean.normal_()
    head.scale.uniform_(0.5, 2.0)
    torch.save(head.state_dict(), folder / "head.pt")
    (folder / "config.json").write_text(json.dumps({"head": {"features": features}}))
    return folder


def test_hidden_states_are_the_models_last_layer_at_the_continuations_tokens(tiny_lm):
    """Read in a padded batch, each pair's states are those of its own unpadded forward pass, at the tokens after its
    prompt's."""
    states = tiny_lm.hidden_states([QUESTION] * 3, SOLUTIONS)
    for solution, got in zip(SOLUTIONS, states):
        ids = tiny_lm.tokenizer(QUESTION + solution, return_tensors="pt")["input_ids"]
        start = len(tiny_lm.tokenizer(QUESTION)["input_ids"])
        with torch.no_grad():
            want = tiny_lm.model(input_ids=ids, output_hidden_states=True).hidden_states[-1][0, start:].float()
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_the_energy_is_softplus_of_minus_the_linear_heads_logit_on_the_mean_state(tiny_lm, tmp_path):
    verifier = LMVerifier(tiny_lm, prompt=lambda question: question, weights=random_head(tmp_path, tiny_lm))
    states = tiny_lm.hidden_states([QUESTION] * 3, SOLUTIONS)
    features = torch.stack([s.mean(0) if len(s) else torch.zeros(s.shape[1]) for s in states])
    torch.testing.assert_close(solution_features(states), features)
    head = load_value_head(tmp_path)
    with torch.no_grad():
        logit = (features - head.mean) / head.scale @ head.linear.weight[0] + head.linear.bias
        want = torch.nn.functional.softplus(-logit).double()
    want[2] = EMPTY_ENERGY  # the empty solution: no tokens for the head to read
    torch.testing.assert_close(verifier.energy(SOLUTIONS, QUESTION), want)
    # two questions' candidates in one call score as each alone
    both = verifier.energy_items([SOLUTIONS[:2], SOLUTIONS[2:]], [QUESTION, QUESTION])
    torch.testing.assert_close(torch.cat(both), want, atol=1e-5, rtol=1e-5)


def test_a_missing_head_and_a_backend_without_hidden_states_are_clear_errors(tiny_lm, tmp_path):
    with pytest.raises(FileNotFoundError, match="train one with"):
        LMVerifier(tiny_lm, weights=tmp_path / "nothing")

    class Served:  # what an OpenAI-compatible server gives: samples and log-probabilities, no hidden states
        name = "served"

        def sample(self, prompts, n=1, **options): ...

        def continuation_logprobs(self, prompts, continuations): ...

    with pytest.raises(TypeError, match="gives no hidden states"):
        LMVerifier(Served(), weights=random_head(tmp_path, tiny_lm))


def test_the_math_ensemble_gives_the_lm_verifier_its_own_tuned_lm_on_the_generators_backend(llama_gemma):
    """``--lm-verifier``: the committed LoRA stacked onto the GSM adapter, on llama.cpp as the generator is; a right
    solution and a wrong one get finite energies, an empty one the empty energy."""
    from consensus.tasks.math.experiment import build_ensemble

    [verifier] = [s for s in build_ensemble(llama_gemma, lm_verifier=True).scorers if isinstance(s, LMVerifier)]
    assert verifier.lm is not llama_gemma
    assert "math-lm-verifier" in verifier.lm.name and verifier.lm.backend == "llama.cpp"
    question = "Tom has 3 apples and buys 4 more. How many apples does he have?"
    energies = verifier.energy(["Tom has 3 + 4 = 7 apples.\n#### 7", "Tom has 3 + 4 = 8 apples.\n#### 8", ""],
                               question)  # the verifier puts it in the math prompt
    assert torch.isfinite(energies).all() and energies[2] == EMPTY_ENERGY
