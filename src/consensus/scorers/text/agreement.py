"""AnswerAgreement: how many other candidates reach the same final answer? (self-consistency as a scorer)"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

import torch

from consensus.core.scorer import Scorer
from consensus.scorers.text.answers import extract_stated


class AnswerAgreement(Scorer):
    """Energy = minus the share of the other candidates that reach the same final answer.

    Self-consistency (majority vote) expressed as a scorer; a candidate with no answer yet
    (a partial solution: ``extract_answer`` gives None) has energy 0, no support. The default
    extractor reads a stated final answer (``#### N``, ``the answer is N``).
    """

    modality = "text"
    differentiable = False

    def __init__(self, extract_answer: Callable[[str], str | None] = extract_stated):
        self.extract_answer = extract_answer

    def energy(self, candidates: Sequence[str], condition: str) -> torch.Tensor:
        answers = [self.extract_answer(c) for c in candidates]
        votes = Counter(a for a in answers if a is not None)
        others = max(1, len(candidates) - 1)
        return torch.tensor([-(votes[a] - 1) / others if a is not None else 0.0 for a in answers],
                            dtype=torch.float64)
