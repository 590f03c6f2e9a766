"""The reward models users already have, as scorers: outcome reward models and process reward models by name.

``RewardModelScorer("org/name")``: a transformers sequence-classification reward model (a head of one output, the
reward, or of two, whose log-odds is it) over the question and the solution as a conversation in the model's own
chat template, the way its model card asks; energy = −reward.

``ProcessRewardScorer("org/name", step_separator="\\n", aggregate="min")``: a process reward model that judges each
step of a solution. The solution is cut into steps at ``step_separator`` and a step tag follows each step (the
model's own: Qwen2.5-Math-PRM's ``<extra_0>``, Math-Shepherd's ``ки``); at each tag the model gives p(the step is
right): a token-classification head's softmax over two labels (``head="token-classification"``), or a causal
LM's choice between a good and a bad token (``head="lm"``, Math-Shepherd's ``+`` against ``-``). The steps'
probabilities are aggregated as search-and-learn and its_hub do, ``last`` (the final step's, which has read the
whole solution), ``min`` (the weakest step), ``prod`` (every step right) or ``mean``, and energy = −log(aggregate).

Both read a (question, solution) pair, load with the dtype and device asked for (``auto``: bfloat16 where the CPU
computes it natively, float32 otherwise; a GPU's own), score in batches, and cut an input longer than the model's
context from the left, keeping the end where the answer is, with a warning once.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any, Literal

import torch

from consensus.core.scorer import Scorer
from consensus.generators.text.causal_lm import import_transformers, resolve_dtype

Aggregate = Literal["last", "min", "prod", "mean"]
AGGREGATES = ("last", "min", "prod", "mean")


def conversation(tokenizer: Any, question: str, solution: str) -> str:
    """The pair as the model reads it: the user asks, the assistant answers, in the tokenizer's chat template;
    without one, the question and the solution on lines of their own."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template([{"role": "user", "content": question},
                                              {"role": "assistant", "content": solution}], tokenize=False)
    return f"{question}\n{solution}"


def aggregate_steps(probabilities: Sequence[float], how: Aggregate) -> float:
    """One solution's score from its steps' p(right): the last, the least, the product or the mean."""
    if not probabilities:
        return 0.0  # no step to judge: nothing shown right
    if how == "last":
        return probabilities[-1]
    if how == "min":
        return min(probabilities)
    if how == "prod":
        return math.prod(probabilities)
    return sum(probabilities) / len(probabilities)


class _HubTextScorer(Scorer):
    """What the two share: the model and tokenizer by name (or given), dtype, device, batches and truncation."""

    modality = "text"
    differentiable = False

    def __init__(self, model: Any, tokenizer: Any, batch_size: int, max_length: int | None, name: str):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model, self.tokenizer, self.batch_size, self._name = model.eval(), tokenizer, batch_size, name
        context = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
        self.max_length = max_length or context or 4096
        self._warned = False

    @property
    def name(self) -> str:
        return self._name

    @staticmethod
    def _load(auto_class: str, model: str, dtype: str, device: str, trust_remote_code: bool) -> tuple[Any, Any]:
        transformers = import_transformers()
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(model, trust_remote_code=trust_remote_code)
            loaded = getattr(transformers, auto_class).from_pretrained(
                model, dtype=resolve_dtype(dtype, device), trust_remote_code=trust_remote_code)
        except OSError as e:
            raise FileNotFoundError(f"cannot load the reward model {model!r} ({e}); give a hub name this machine can "
                                    "reach or a local folder holding the model and its tokenizer") from e
        return loaded.to(device), tokenizer

    def _encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text, cut from the left to ``max_length`` (warned once)."""
        ids = [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        if any(len(x) > self.max_length for x in ids) and not self._warned:
            warnings.warn(f"{self.name}: an input is longer than {self.max_length} tokens; cut from the left, "
                          "keeping the end of the solution", stacklevel=3)
            self._warned = True
        return [x[-self.max_length:] for x in ids]

    def _forward(self, ids: Sequence[Sequence[int]]) -> list[torch.Tensor]:
        """The model's logits for each input, in batches of ``batch_size`` (right-padded; each cut to its length)."""
        out = []
        device = next(self.model.parameters()).device
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        for start in range(0, len(ids), self.batch_size):
            batch = ids[start:start + self.batch_size]
            width = max(len(x) for x in batch)
            input_ids = torch.tensor([list(x) + [pad] * (width - len(x)) for x in batch], device=device)
            mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in batch], device=device)
            with torch.no_grad():
                logits = self.model(input_ids=input_ids, attention_mask=mask).logits.float().cpu()
            out.extend(logits[i, :len(x)] if logits.ndim == 3 else logits[i] for i, x in enumerate(batch))
        return out


class RewardModelScorer(_HubTextScorer):
    """An outcome reward model by name (a transformers sequence-classification model); energy = −reward. See the
    module for what it reads."""

    def __init__(self, model: str | Any, tokenizer: Any = None, *, dtype: str = "auto", device: str = "cpu",
                 batch_size: int = 8, max_length: int | None = None, name: str | None = None,
                 trust_remote_code: bool = False):
        if isinstance(model, str):
            name = name or f"RewardModel[{model}]"
            model, tokenizer = self._load("AutoModelForSequenceClassification", model, dtype, device,
                                          trust_remote_code)
        if tokenizer is None:
            raise ValueError("a RewardModelScorer given a model object needs its tokenizer too")
        labels = model.config.num_labels
        if labels not in (1, 2):
            raise ValueError(f"a reward model has a head of 1 output (the reward) or 2 (its log-odds); this one has "
                             f"{labels}")
        super().__init__(model, tokenizer, batch_size, max_length, name or "RewardModel")

    def energy(self, candidates: Sequence[str], condition: str) -> torch.Tensor:
        logits = self._forward(self._encode([conversation(self.tokenizer, condition, c) for c in candidates]))
        rewards = [float(x[-1] - x[0]) if x.numel() == 2 else float(x[0]) for x in logits]
        return -torch.tensor(rewards, dtype=torch.float64)


class ProcessRewardScorer(_HubTextScorer):
    """A process reward model by name: each step's p(right) at its step tag, aggregated; energy = −log(aggregate).
    See the module for the two heads and the aggregations."""

    def __init__(self, model: str | Any, tokenizer: Any = None, *, step_separator: str = "\n",
                 aggregate: Aggregate = "min", step_tag: str = "<extra_0>",
                 head: Literal["token-classification", "lm"] = "token-classification",
                 good_token: str = "+", bad_token: str = "-", dtype: str = "auto", device: str = "cpu",
                 batch_size: int = 8, max_length: int | None = None, name: str | None = None,
                 trust_remote_code: bool = False):
        if aggregate not in AGGREGATES:
            raise ValueError(f"unknown aggregate {aggregate!r}; use one of {', '.join(AGGREGATES)}")
        if head not in ("token-classification", "lm"):
            raise ValueError(f"unknown head {head!r}; use token-classification or lm")
        if not step_separator:
            raise ValueError("step_separator must not be empty: it is where one step ends and the next begins")
        if isinstance(model, str):
            name = name or f"ProcessReward[{model}]"
            auto = "AutoModelForTokenClassification" if head == "token-classification" else "AutoModelForCausalLM"
            model, tokenizer = self._load(auto, model, dtype, device, trust_remote_code)
        if tokenizer is None:
            raise ValueError("a ProcessRewardScorer given a model object needs its tokenizer too")
        self.tag_id = self._one_token(tokenizer, step_tag, "step_tag")
        if head == "lm":
            self.choice = [self._one_token(tokenizer, good_token, "good_token"),
                           self._one_token(tokenizer, bad_token, "bad_token")]
        elif model.config.num_labels != 2:
            raise ValueError(f"a token-classification PRM has 2 labels (wrong, right); this one has "
                             f"{model.config.num_labels}")
        self.step_separator, self.aggregate, self.step_tag, self.head = step_separator, aggregate, step_tag, head
        super().__init__(model, tokenizer, batch_size, max_length, name or "ProcessReward")

    @staticmethod
    def _one_token(tokenizer: Any, text: str, what: str) -> int:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            raise ValueError(f"{what} {text!r} is {len(ids)} tokens to this tokenizer; give the model's own tag, "
                             "one token (e.g. Qwen2.5-Math-PRM's <extra_0>, Math-Shepherd's ки)")
        return ids[0]

    def tagged(self, solution: str) -> str:
        """The solution's steps, each followed by the step tag."""
        steps = [s.strip() for s in solution.split(self.step_separator) if s.strip()]
        return "".join(f"{step}{self.step_tag}" for step in steps)

    def step_probabilities(self, candidates: Sequence[str], condition: str) -> list[list[float]]:
        """Each candidate's p(right) of every step (at each step tag that survived truncation)."""
        ids = self._encode([conversation(self.tokenizer, condition, self.tagged(c)) for c in candidates])
        out = []
        for x, logits in zip(ids, self._forward(ids)):
            at = [i for i, token in enumerate(x) if token == self.tag_id]
            if self.head == "lm":
                p = torch.softmax(logits[at][:, self.choice], dim=-1)[:, 0]
            else:
                p = torch.softmax(logits[at], dim=-1)[:, 1]
            out.append(p.tolist())
        return out

    def energy(self, candidates: Sequence[str], condition: str) -> torch.Tensor:
        scores = [aggregate_steps(p, self.aggregate) for p in self.step_probabilities(candidates, condition)]
        return torch.tensor([-math.log(max(s, 1e-12)) for s in scores], dtype=torch.float64)
