"""Causal-LM generator over any transformers ``AutoModelForCausalLM``.

N proposals for one prompt share one prefill: the prompt is run through the model once and
its key/value cache is repeated N times, so a best-of-N run costs one prompt pass, not N.
Rows that hit a stop string or the end-of-sequence token leave the batch (their cache rows
are dropped), so a long straggler does not make the finished rows pay for its tokens.

The sampler draws from the top-k slice of the vocabulary only: sorting and sampling over
Gemma's 262k-token vocabulary costs more than the model's forward pass at batch 16
(../shared/reference/gemma-270m-measurements.md §1.2); restricting to the k most likely
tokens before nucleus filtering changes nothing a top-p of <1 would not already cut.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from consensus.generators.text.protocol import Completion


# Deprecations inside transformers' own model code and PEFT's merge, which a user can do nothing about
# (the cache still has to be passed as past_key_values before 5.40, the pinned range).
warnings.filterwarnings("ignore", message="`past_key_values` is deprecated", category=FutureWarning)
warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)


def _import_transformers():
    try:
        import transformers
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError("the causal-LM generator needs transformers: pip install 'consensus[lm]'") from e
    return transformers


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    table = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}
    if dtype not in table:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {sorted(table)}")
    return table[dtype]


class CausalLMGenerator:
    """Wraps a causal LM and its tokenizer.

    Build it from a loaded model with ``CausalLMGenerator(model, tokenizer)`` or by name with
    ``CausalLMGenerator.from_pretrained("gpt2")``. The model is put in eval mode and never updated.
    """

    def __init__(self, model: Any, tokenizer: Any, name: str | None = None):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name or getattr(model.config, "_name_or_path", None) or type(model).__name__
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.eos_ids = self._eos_ids()
        self.seconds = 0.0  # wall time spent inside this generator, for overhead accounting
        head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        if head is not None:
            # transformers slices the hidden states for `logits_to_keep` (a non-contiguous view),
            # and torch's CPU bf16 matmul on a non-contiguous input is ~100x slower (measured: 28 s
            # instead of 0.2 s for Gemma's 262k-way head on 2 rows); a contiguous copy is free.
            head.register_forward_pre_hook(_contiguous_input)

    @classmethod
    def from_pretrained(cls, name_or_path: str, dtype: str | torch.dtype = "float32", device: str = "cpu",
                        adapter: str | None = None, **kwargs: Any) -> CausalLMGenerator:
        """Load any hub or local causal LM; ``adapter`` is an optional PEFT (LoRA) adapter directory,
        merged into the weights so generation runs at the base model's speed."""
        transformers = _import_transformers()
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(name_or_path, **kwargs)
            model = transformers.AutoModelForCausalLM.from_pretrained(name_or_path, dtype=resolve_dtype(dtype), **kwargs)
        except OSError as e:
            raise OSError(
                f"could not load the causal LM {name_or_path!r}: {e}\nGive a local directory holding config.json, "
                "the weights and the tokenizer, or a hub name on a machine that can reach the hub"
            ) from e
        if adapter is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
        name = name_or_path if adapter is None else f"{name_or_path} + {Path(adapter).name}"
        return cls(model.to(device), tokenizer, name=name)

    @property
    def context(self) -> int | None:
        """The longest sequence the model reads (its position embeddings), if its config says."""
        config = self.model.config
        return getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _eos_ids(self) -> set[int]:
        ids = self.model.generation_config.eos_token_id if self.model.generation_config is not None else None
        ids = ids if ids is not None else self.tokenizer.eos_token_id
        if ids is None:
            return set()
        return set(ids) if isinstance(ids, (list, tuple)) else {int(ids)}

    def encode(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Tokenise with left padding, so every row's last token sits in the last column."""
        self.tokenizer.padding_side = "left"
        enc = self.tokenizer(list(texts), return_tensors="pt", padding=True)
        return {k: v.to(self.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}

    @torch.inference_mode()
    def sample(
        self,
        prompts: Sequence[str],
        n: int = 1,
        *,
        max_new_tokens: int = 128,
        temperature: float = 1.0,
        top_p: float = 1.0,
        top_k: int = 64,
        stop: Sequence[str] = (),
        generator: torch.Generator | None = None,
    ) -> list[list[Completion]]:
        """Draw ``n`` continuations of every prompt; ``temperature=0`` is greedy decoding.

        Returns one list of ``n`` completions per prompt. Prompts are prefilled once each
        (batched, left-padded) and their caches repeated ``n`` times.
        """
        if not prompts:
            raise ValueError("sample() needs at least one prompt")
        if n < 1 or max_new_tokens < 1:
            raise ValueError(f"n and max_new_tokens must be >= 1, got n={n}, max_new_tokens={max_new_tokens}")
        if temperature < 0 or not 0 < top_p <= 1 or top_k < 1:
            raise ValueError(f"need temperature >= 0, 0 < top_p <= 1, top_k >= 1; got {temperature}, {top_p}, {top_k}")
        start = time.perf_counter()
        transformers = _import_transformers()
        enc = self.encode(prompts)
        mask = enc["attention_mask"]
        if self.context is not None:  # a continuation ends ("length") where the model's context does
            room = self.context - enc["input_ids"].shape[1]
            if room < 1:
                raise ValueError(f"a prompt is {enc['input_ids'].shape[1]} tokens, the whole {self.context}-token "
                                 f"context of {self.name}; shorten it or use a model with a longer context")
            max_new_tokens = min(max_new_tokens, room)
        cache = transformers.DynamicCache(config=self.model.config)
        out = self.model(input_ids=enc["input_ids"], attention_mask=mask, position_ids=_positions(mask),
                         past_key_values=cache, use_cache=True, logits_to_keep=1)
        rows = len(prompts) * n
        if n > 1:
            cache.batch_repeat_interleave(n)
            mask = mask.repeat_interleave(n, dim=0)
        logits = out.logits[:, -1, :].float().repeat_interleave(n, dim=0)

        generated: list[list[int]] = [[] for _ in range(rows)]
        texts = [""] * rows
        ended = ["length"] * rows
        active = torch.arange(rows, device=self.device)  # original row of each batch row
        for _ in range(max_new_tokens):
            next_tokens = _draw(logits, temperature, top_p, top_k, generator)
            keep = []
            for b, (row, tok) in enumerate(zip(active.tolist(), next_tokens.tolist())):
                generated[row].append(tok)
                if tok in self.eos_ids:
                    ended[row] = "eos"
                    texts[row] = self.tokenizer.decode(generated[row][:-1], skip_special_tokens=True)
                    continue
                text = self.tokenizer.decode(generated[row], skip_special_tokens=True)
                cut = _first_stop(text, stop)
                if cut is not None:
                    ended[row], texts[row] = "stop", text[:cut]
                    continue
                texts[row] = text
                keep.append(b)
            if not keep:
                break
            if len(keep) < len(active):
                index = torch.tensor(keep, device=self.device)
                cache.batch_select_indices(index)
                active, mask, next_tokens = active[index], mask[index], next_tokens[index]
            mask = torch.cat([mask, mask.new_ones(len(active), 1)], dim=1)
            out = self.model(input_ids=next_tokens[:, None], attention_mask=mask,
                             position_ids=_positions(mask)[:, -1:], past_key_values=cache, use_cache=True)
            logits = out.logits[:, -1, :].float()
        self.seconds += time.perf_counter() - start
        flat = [Completion(texts[r], len(generated[r]), ended[r]) for r in range(rows)]
        return [flat[i * n:(i + 1) * n] for i in range(len(prompts))]

    @torch.inference_mode()
    def continuation_logprobs(self, prompts: Sequence[str], continuations: Sequence[str],
                              batch_size: int = 8) -> list[torch.Tensor]:
        """Per-token log-probabilities of each continuation given its prompt (teacher forcing).

        Tokenises prompt and prompt+continuation and scores the tokens after the prompt's;
        returns one 1-D tensor per pair (empty for an empty continuation).
        """
        if len(prompts) != len(continuations):
            raise ValueError("continuation_logprobs needs one prompt per continuation")
        start = time.perf_counter()
        results: list[torch.Tensor] = []
        for i in range(0, len(prompts), batch_size):
            ps, cs = prompts[i:i + batch_size], continuations[i:i + batch_size]
            prompt_lens = [len(self.tokenizer(p)["input_ids"]) for p in ps]
            enc = self.encode([p + c for p, c in zip(ps, cs)])
            ids, mask = enc["input_ids"], enc["attention_mask"]
            if self.context is not None and ids.shape[1] > self.context:
                raise ValueError(f"a prompt and its continuation are {ids.shape[1]} tokens, beyond the {self.context}-token "
                                 f"context of {self.name}; shorten them or use a model with a longer context")
            lengths = mask.sum(1).tolist()
            n_conts = [max(0, length - plen) for plen, length in zip(prompt_lens, lengths)]
            # Left padding puts every continuation at the end of its row, so the LM head (a
            # 262k-way matmul for Gemma) only needs the last max(n_cont) + 1 positions.
            keep = min(ids.shape[1], max(n_conts) + 1)
            logits = self.model(input_ids=ids, attention_mask=mask, position_ids=_positions(mask),
                                logits_to_keep=keep).logits.float()
            logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, ids.shape[1] - keep + 1:, None])[..., 0]
            for row, n_cont in enumerate(n_conts):
                results.append(logp[row, logp.shape[1] - n_cont:].cpu() if n_cont else torch.empty(0))
        self.seconds += time.perf_counter() - start
        return results


def _contiguous_input(module: torch.nn.Module, args: tuple) -> tuple:
    return (args[0].contiguous(), *args[1:])


def _positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids that skip left padding: 0 at each row's first real token."""
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


def _first_stop(text: str, stop: Sequence[str]) -> int | None:
    hits = [i for i in (text.find(s) for s in stop) if i >= 0]
    return min(hits) if hits else None


def _draw(logits: torch.Tensor, temperature: float, top_p: float, top_k: int,
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
