"""What every text backend's sampler shares: its argument checks, the draw, stop strings, and the record of each row.

A backend computes next-token logits for the rows still decoding; everything else is here, so that every backend
gives one seed the same semantics (top-k, then nucleus, then a draw from the caller's ``torch.Generator``), cuts at
stop strings alike and returns ``Completion``s whose texts carry their tokens' log-probabilities (``SampledText``).

The draw reads the top-k slice of the vocabulary only: sorting and sampling over Gemma's 262k-token vocabulary
costs more than the model's forward pass at batch 16 (../shared/reference/gemma-270m-measurements.md §1.2);
restricting to the k most likely tokens before nucleus filtering changes nothing a top-p of <1 would not already cut.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Protocol

import torch

from consensus.generators.text.protocol import Completion, SampledText

Generators = torch.Generator | Sequence[torch.Generator] | None


class Vocabulary(Protocol):
    """What the record of a row needs of its backend (the generator itself, which its ``SampledText``s name as their
    model): token ids to text, and the tokens that spell a proper prefix of a token's text."""

    def decode(self, ids: Sequence[int]) -> str: ...

    def token_text(self, token: int) -> str: ...

    def prefix_tokens(self, token: int) -> list[int]: ...


def check_sample_args(prompts: Sequence[str], n: int, max_new_tokens: int, temperature: float, top_p: float,
                      top_k: int, generator: Generators) -> None:
    if not prompts:
        raise ValueError("sample() needs at least one prompt")
    if isinstance(generator, (list, tuple)) and len(generator) != len(prompts):
        raise ValueError(f"give one generator per prompt: {len(generator)} generators, {len(prompts)} prompts")
    if n < 1 or max_new_tokens < 1:
        raise ValueError(f"n and max_new_tokens must be >= 1, got n={n}, max_new_tokens={max_new_tokens}")
    if temperature < 0 or not 0 < top_p <= 1 or top_k < 1:
        raise ValueError(f"need temperature >= 0, 0 < top_p <= 1, top_k >= 1; got {temperature}, {top_p}, {top_k}")


class Draws:
    """Draws the next tokens of the rows of ``prompts`` (``n`` rows each). With one generator per prompt, the rows of
    the prompts given one generator draw from it together, as they would in a call of their own, so several items
    batched together get the draws each gets alone."""

    def __init__(self, prompts: int, n: int, temperature: float, top_p: float, top_k: int, generator: Generators,
                 device: torch.device | str = "cpu"):
        self.temperature, self.top_p, self.top_k = temperature, top_p, top_k
        if isinstance(generator, (list, tuple)):
            self.generators = list({id(g): g for g in generator}.values())
            index = {id(g): i for i, g in enumerate(self.generators)}
            self.owner = torch.tensor([index[id(g)] for g in generator], device=device).repeat_interleave(n)
        else:
            self.generators, self.owner = [generator], None

    def __call__(self, logits: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Next tokens of the batch rows whose original rows are ``rows``, from their [B, V] logits."""
        if self.owner is None:
            return draw(logits, self.temperature, self.top_p, self.top_k, self.generators[0])
        owner = self.owner[rows]
        tokens = torch.empty(len(rows), dtype=torch.long, device=logits.device)
        for i in owner.unique().tolist():
            its_rows = (owner == i).nonzero()[:, 0]
            tokens[its_rows] = draw(logits[its_rows], self.temperature, self.top_p, self.top_k, self.generators[i])
        return tokens


def draw(logits: torch.Tensor, temperature: float, top_p: float, top_k: int,
         generator: torch.Generator | None) -> torch.Tensor:
    """Next tokens from [B, V] logits: greedy at temperature 0, else top-k, then nucleus, then a draw."""
    if temperature == 0:
        return logits.argmax(-1)
    values, indices = logits.topk(min(top_k, logits.shape[-1]), dim=-1)  # sorted, descending
    probs = torch.softmax(values / temperature, dim=-1)
    if top_p < 1:
        # Keep the smallest prefix whose mass reaches top_p: drop a token if the mass before it already does.
        before = probs.cumsum(-1) - probs
        probs = probs.masked_fill(before >= top_p, 0.0)
    # The draw runs where the generator lives (a CPU generator cannot drive a CUDA draw): only
    # [B, top_k] probabilities move, and a seed gives the same tokens on every device.
    where = generator.device if generator is not None else probs.device
    choice = torch.multinomial(probs.to(where), 1, generator=generator).to(indices.device)
    return indices.gather(-1, choice)[:, 0]


def proper_prefix_tokens(text: str, encode: Callable[[str], list[int]]) -> list[int]:
    """The tokens that alone spell a proper prefix of ``text`` (a token's text), by ``encode`` (no special tokens)."""
    found = (encode(text[:i]) for i in range(1, len(text)))
    return [ids[0] for ids in found if len(ids) == 1]


def carried_logprobs(lm: object, prompt: str, continuation: str,
                     encode: Callable[[str], list[int]]) -> torch.Tensor | None:
    """The log-probabilities a ``SampledText`` of ``lm`` carries, when they are the ones teacher forcing would score:
    sampled from this prompt, and its tokens those ``encode`` gives prompt + continuation after the prompt's (a
    sampled token sequence the tokenizer would split otherwise is scored afresh); None otherwise."""
    if not (isinstance(continuation, SampledText) and continuation.model is lm and continuation.context == prompt):
        return None
    prompt_ids, ids = encode(prompt), encode(prompt + continuation)
    if ids[:len(prompt_ids)] != prompt_ids or tuple(ids[len(prompt_ids):]) != continuation.token_ids:
        return None
    return continuation.logprobs


def first_stop(text: str, stop: Sequence[str]) -> tuple[int | None, str | None]:
    """Where the first stop string in ``text`` begins, and which it is (None, None when there is none)."""
    hits = [(i, s) for i, s in ((text.find(s), s) for s in stop) if i >= 0]
    return min(hits) if hits else (None, None)


class Rows:
    """What the ``n`` rows of each prompt have drawn so far: tokens, their untempered log-probabilities (as a
    likelihood scorer reads them), the text, and why each row ended."""

    def __init__(self, lm: Vocabulary, prompts: Sequence[str], n: int, eos_ids: set[int], stop: Sequence[str],
                 budget: Sequence[int]):
        self.lm, self.prompts, self.n = lm, list(prompts), n
        self.eos_ids, self.stop, self.budget = eos_ids, tuple(stop), list(budget)
        rows = len(prompts) * n
        self.generated: list[list[int]] = [[] for _ in range(rows)]
        self.logprobs: list[list[float]] = [[] for _ in range(rows)]
        # Per row and step, the log-probabilities of the tokens that spell a proper prefix of the drawn one: a stop
        # string that begins inside a token ("\n\n" before "Question:") leaves the text ending on such a prefix.
        self.shorter: list[list[dict[int, float]]] = [[] for _ in range(rows)]
        self.texts = [""] * rows
        self.ended = ["length"] * rows
        self.stops: list[str | None] = [None] * rows

    def record(self, rows: Sequence[int], tokens: torch.Tensor, logits: torch.Tensor) -> list[int]:
        """Append each batch row's drawn token (batch row b is original row ``rows[b]``, its logits ``logits[b]``);
        return the batch rows that go on decoding."""
        normaliser = logits.logsumexp(-1)  # log-probability = logit - logsumexp, read for a few tokens only
        chosen = (logits.gather(-1, tokens[:, None])[:, 0] - normaliser).tolist()
        keep = []
        for b, (row, tok) in enumerate(zip(rows, tokens.tolist())):
            self.generated[row].append(tok)
            self.logprobs[row].append(chosen[b])
            prefixes = self.lm.prefix_tokens(tok)
            self.shorter[row].append(dict(zip(prefixes, (logits[b, prefixes] - normaliser[b]).tolist()))
                                     if prefixes else {})
            if tok in self.eos_ids:
                self.ended[row] = "eos"
                self.texts[row] = self.lm.decode(self.generated[row][:-1])
                continue
            text = self.lm.decode(self.generated[row])
            cut, hit = first_stop(text, self.stop)
            if cut is not None:
                self.ended[row], self.texts[row], self.stops[row] = "stop", text[:cut], hit
                continue
            self.texts[row] = text
            if len(self.generated[row]) < self.budget[row // self.n]:
                keep.append(b)
        return keep

    def completions(self) -> list[list[Completion]]:
        """One list of ``n`` completions per prompt."""
        flat = []
        for r, context in enumerate(p for p in self.prompts for _ in range(self.n)):
            ids, lps = self.generated[r], self.logprobs[r]
            if self.ended[r] == "eos":
                ids, lps = ids[:-1], lps[:-1]
            sampled = functools.partial(self._sampled, ids=ids, logprobs=lps, shorter=self.shorter[r], context=context)
            with_stop = None if self.stops[r] is None else sampled(self.texts[r] + self.stops[r])
            flat.append(Completion(sampled(self.texts[r]), len(self.generated[r]), self.ended[r], with_stop))
        return [flat[i * self.n:(i + 1) * self.n] for i in range(len(self.prompts))]

    def _sampled(self, text: str, ids: list[int], logprobs: list[float], shorter: list[dict[int, float]],
                 context: str) -> str:
        """``text`` as a ``SampledText`` carrying the drawn tokens that spell it; when it ends inside the k-th drawn
        token, on a prefix that is a token itself, that token's log-probability at step k takes its place. A plain
        str when neither holds."""
        decode, k = self.lm.decode, len(ids)
        while k > 0 and len(decode(ids[:k])) > len(text):
            k -= 1
        spelled = decode(ids[:k])
        if spelled == text:
            return SampledText(text, ids[:k], torch.tensor(logprobs[:k]), self.lm, context)
        if k < len(ids) and text.startswith(spelled):
            tail = text[len(spelled):]
            for token, logprob in shorter[k].items():
                if self.lm.token_text(token) == tail:
                    return SampledText(text, [*ids[:k], token], torch.tensor([*logprobs[:k], logprob]), self.lm,
                                       context)
        return text
