"""An LM verifier: the generator's own language model, tuned to judge, reads a question and a candidate solution, and
a value head on its last layer gives the logit that the solution's final answer is right.

Cobbe et al. (2021) trained GSM8K's verifiers this way: the generator's LM with a scalar head, on the generator's own
samples of training problems, each labelled by whether its final answer is the gold one. Here the LM is the math
generator (Gemma 3 270M + the GSM LoRA) with a LoRA of its own on its top layers, trained with the head
(``scripts/train_lm_verifier.py``; its model card says on what and how well). The LM's hidden states after the final
norm at the solution's tokens, given the prompt, are summarised as

    f = the mean over the solution's tokens                           (hidden size)

standardised by the training set's mean and spread, then a linear value head (Cobbe et al.'s scalar head) gives
the logit ℓ, and

    E = −log σ(ℓ) = softplus(−ℓ)                                      (the negative log-probability of "right").

The states come from whichever backend the LM runs on (``ReadsHiddenStates``; the verifier's LoRA stacked onto the
GSM adapter by ``consensus.tasks.math.generator.load_verifier_lm``): llama.cpp over the GGUF by default. The LoRA
and head were trained on the torch backend's states of the same weights; llama.cpp's features differ from those by
about 3% of their norm, as much as one question's solutions differ from each other (the model card).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

from consensus.core.scorer import Scorer
from consensus.generators.text.protocol import ReadsHiddenStates
from consensus.zoo import WEIGHTS_DIR

LM_VERIFIER_WEIGHTS = WEIGHTS_DIR / "math-lm-verifier"
TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
EMPTY_ENERGY = 10.0  # an empty solution's: softplus(10), a logit of −10 (p(right) ≈ 5e-5)


def solution_features(states: Sequence[torch.Tensor]) -> torch.Tensor:
    """The mean over its tokens of each solution's hidden states ``[tokens, hidden]``; zeros for an empty one, which
    ``LMVerifier`` does not score by its head. (The last token's state, tried beside it, carried no signal across
    held-out templates: within-problem AUC 0.45–0.55.)"""
    return torch.stack([s.float().mean(0) if len(s) else s.new_zeros(s.shape[-1]) for s in states])


class ValueHead(nn.Module):
    """Standardise the features by the training set's statistics, then a linear map to one logit."""

    def __init__(self, features: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(features))
        self.register_buffer("scale", torch.ones(features))
        self.linear = nn.Linear(features, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear((features - self.mean) / self.scale)[:, 0]


def load_value_head(folder: str | Path = LM_VERIFIER_WEIGHTS) -> ValueHead:
    """The head a training run wrote to ``folder`` (``config.json`` and ``head.pt``), ready to score."""
    folder = Path(folder)
    try:
        config = json.loads((folder / "config.json").read_text())["head"]
        state = torch.load(folder / "head.pt", map_location="cpu", weights_only=True)
    except (OSError, KeyError, json.JSONDecodeError) as e:
        raise FileNotFoundError(f"no LM verifier head in {folder} ({e}); train one with "
                                f"python scripts/train_lm_verifier.py --out {folder}") from e
    head = ValueHead(config["features"])
    head.load_state_dict(state)
    return head.eval()


class LMVerifier(Scorer):
    """Energy = softplus(−ℓ), ℓ the value head's logit that the solution is right (the module docstring).

    Args:
        lm: the LM whose hidden states the head reads (a ``ReadsHiddenStates`` backend): for the committed head, the
            math generator with the verifier's LoRA (``consensus.tasks.math.generator.load_verifier_lm``).
        prompt: turns the condition (the question) into the text the solution continues, as the head was trained.
        weights: the head's folder.
    """

    modality = "text"
    differentiable = False

    def __init__(self, lm: ReadsHiddenStates, prompt: Callable[[str], str] = lambda condition: condition,
                 weights: str | Path = LM_VERIFIER_WEIGHTS, name: str = "LMVerifier"):
        if not isinstance(lm, ReadsHiddenStates):
            raise TypeError(f"{type(lm).__name__} gives no hidden states; an LM verifier needs the torch or llama.cpp "
                            "backend (a served model's API does not expose them)")
        self.lm, self.prompt, self.head, self._name = lm, prompt, load_value_head(weights), name

    @property
    def name(self) -> str:
        return self._name

    def energy(self, candidates: Sequence[str], condition: str) -> torch.Tensor:
        [energies] = self.energy_items([candidates], [condition])
        return energies

    def energy_items(self, candidate_sets: Sequence[Sequence[str]], conditions: Sequence[str],
                     noise_levels: Sequence[None] | None = None) -> list[torch.Tensor]:
        """Every item's candidates in one ``hidden_states`` call."""
        prompts = [self.prompt(condition) for condition, cs in zip(conditions, candidate_sets) for _ in cs]
        states = self.lm.hidden_states(prompts, [str(c) for cs in candidate_sets for c in cs])
        energies = self.energy_of_features(solution_features(states))
        return list(energies.split([len(cs) for cs in candidate_sets]))

    def energy_of_features(self, features: torch.Tensor) -> torch.Tensor:
        """softplus(−ℓ) of solutions' features (``solution_features``): what ``energy`` gives once the states are
        read, for a benchmark that keeps the features and tries heads. An empty solution (all-zero features) has no
        tokens for the head to read and no answer to be right: ``EMPTY_ENERGY``."""
        features = features.float()
        with torch.no_grad():
            energies = nn.functional.softplus(-self.head(features)).double()
        return energies.masked_fill(~features.any(1), EMPTY_ENERGY)
