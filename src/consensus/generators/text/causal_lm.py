"""Causal-LM generator over any transformers ``AutoModelForCausalLM``.

N proposals for one prompt share one prefill: the prompt is run through the model once and
its key/value cache is repeated N times, so a best-of-N run costs one prompt pass, not N.
Rows that hit a stop string or the end-of-sequence token leave the batch (their cache rows
are dropped), so a long straggler does not make the finished rows pay for its tokens.

The draws, stop strings and per-row records are every backend's (``consensus.generators.text.decoding``).

Every sampled text carries its tokens and their log-probabilities (``SampledText``): the model computed
them to sample, so a likelihood of the same model (``continuation_logprobs``) reads them instead of running
a second forward pass over every candidate.

What the model read stays for prompts that extend it (``PrefixCache``, 512 MiB by default): the rows of
a call keep their keys and values when they end, so step-level consensus, which prompts with the partial
solutions the previous step sampled, prefills only the tokens after them.
"""

from __future__ import annotations

import functools
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from consensus.generators.text.decoding import Draws, Rows, carried_logprobs, check_sample_args, proper_prefix_tokens
from consensus.generators.text.prefix_cache import PrefixCache
from consensus.generators.text.protocol import Completion
from consensus.generators.text.shared_prefix import SharedPrefix
from consensus.generators.text.shared_prefix import install as install_shared_prefix

def import_transformers():
    """transformers, or an ImportError saying how to install it; silences, once it is imported, the deprecations
    inside transformers' own model code and PEFT's merge, which a user can do nothing about (the cache still has to
    be passed as past_key_values before 5.40, the pinned range)."""
    try:
        import transformers
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError("the causal-LM generator needs transformers: pip install 'consensus[lm]'") from e
    warnings.filterwarnings("ignore", message="`past_key_values` is deprecated", category=FutureWarning)
    warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
    return transformers


def cpu_has_native_bfloat16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU computes bfloat16 in hardware (x86 AVX512-BF16 or AMX-BF16, Arm BF16), read from the kernel's
    CPU flags. Without it torch emulates bf16 matmuls: 0.8 GFLOPS against 67 in float32 on an AVX2-only AMD EPYC."""
    try:
        cpuinfo = cpuinfo.read_text()
    except OSError:  # not Linux: no way to tell cheaply, and float32 is never slow
        return False
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith(("flags", "Features")):
            flags.update(line.split(":", 1)[1].split())
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def preferred_dtype(device: str | torch.device = "cpu") -> torch.dtype:
    """bfloat16 where the device computes it natively (a CUDA GPU that supports it, a CPU with bf16 instructions),
    float32 otherwise."""
    if torch.device(device).type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    return torch.bfloat16 if cpu_has_native_bfloat16() else torch.float32


def resolve_dtype(dtype: str | torch.dtype, device: str | torch.device = "cpu") -> torch.dtype:
    """A dtype by name; ``"auto"`` is ``preferred_dtype(device)``."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return preferred_dtype(device)
    table = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}
    if dtype not in table:
        raise ValueError(f"unknown dtype {dtype!r}; use auto or one of {sorted(table)}")
    return table[dtype]


class CausalLMGenerator:
    """Wraps a causal LM and its tokenizer.

    Build it from a loaded model with ``CausalLMGenerator(model, tokenizer)`` or by name with
    ``CausalLMGenerator.from_pretrained("gpt2")``. The model is put in eval mode and never updated.
    """

    backend = "torch"

    def __init__(self, model: Any, tokenizer: Any, name: str | None = None, prefix_cache_bytes: int = 512 * 2**20,
                 shared_prompt_attention: bool = True):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name or getattr(model.config, "_name_or_path", None) or type(model).__name__
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.eos_ids = self._eos_ids()
        self.seconds = 0.0  # wall time spent inside this generator, for overhead accounting
        self._prefixes: dict[int, list[int]] = {}  # token -> the tokens spelling a proper prefix of it
        # Keys and values of what the model read, for prompts that extend it (0 bytes: none kept)
        self.prefix_cache = PrefixCache(prefix_cache_bytes) if prefix_cache_bytes else None
        # The n rows of a prompt read its keys and values from one copy (cascade attention, ``shared_prefix``),
        # where the model's attention allows it
        self.shares_prompts = shared_prompt_attention and install_shared_prefix(model)
        head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        if head is not None:
            # transformers slices the hidden states for `logits_to_keep` (a non-contiguous view),
            # and torch's CPU bf16 matmul on a non-contiguous input is ~100x slower (measured: 28 s
            # instead of 0.2 s for Gemma's 262k-way head on 2 rows); a contiguous copy is free.
            head.register_forward_pre_hook(_contiguous_input)

    @classmethod
    def from_pretrained(cls, name_or_path: str, dtype: str | torch.dtype = "float32", device: str = "cpu",
                        adapter: str | None = None, prefix_cache_bytes: int = 512 * 2**20,
                        shared_prompt_attention: bool = True, **kwargs: Any) -> CausalLMGenerator:
        """Load any hub or local causal LM (``dtype="auto"``: bfloat16 where ``device`` computes it natively, else
        float32); ``adapter`` is an optional PEFT (LoRA) adapter directory,
        merged into the weights so generation runs at the base model's speed. ``prefix_cache_bytes`` bounds the
        keys and values kept for later prompts (0: keep none); ``shared_prompt_attention`` lets the samples of a
        prompt read its keys and values from one copy (``consensus.generators.text.shared_prefix``)."""
        transformers = import_transformers()
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(name_or_path, **kwargs)
            model = transformers.AutoModelForCausalLM.from_pretrained(name_or_path, dtype=resolve_dtype(dtype, device),
                                                                      **kwargs)
        except OSError as e:
            raise OSError(
                f"could not load the causal LM {name_or_path!r}: {e}\nGive a local directory holding config.json, "
                "the weights and the tokenizer, or a hub name on a machine that can reach the hub"
            ) from e
        if adapter is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
        name = name_or_path if adapter is None else f"{name_or_path} + {Path(adapter).name}"
        return cls(model.to(device), tokenizer, name=name, prefix_cache_bytes=prefix_cache_bytes,
                   shared_prompt_attention=shared_prompt_attention)

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
        generator: torch.Generator | Sequence[torch.Generator] | None = None,
    ) -> list[list[Completion]]:
        """Draw ``n`` continuations of every prompt; ``temperature=0`` is greedy decoding.

        Returns one list of ``n`` completions per prompt. Prompts are prefilled once each
        (batched, left-padded); their ``n`` rows then read the prompt's keys and values from one copy
        (``SharedPrefix``), or from ``n`` copies where the model's attention cannot. ``generator`` may be one per
        prompt: the rows of the prompts given one generator draw from it together, as they would in a call
        of their own, so several items batched together get the draws each gets alone.
        """
        check_sample_args(prompts, n, max_new_tokens, temperature, top_p, top_k, generator)
        draws = Draws(len(prompts), n, temperature, top_p, top_k, generator, self.device)
        start = time.perf_counter()
        ids = [self.tokenizer(p)["input_ids"] for p in prompts]
        budget = self._budgets([len(x) for x in ids], max_new_tokens)
        max_new_tokens = max(budget)
        cache, mask = self._cache_of_kept_prefixes(ids)
        keeps_prefixes = self._can_keep(cache)
        rest, rest_mask = self._left_padded([x[w:] for x, w in zip(ids, mask.sum(1).tolist())])
        mask = torch.cat([mask, rest_mask], dim=1)
        out = self.model(input_ids=rest, attention_mask=mask,
                         position_ids=left_padded_positions(mask)[:, -rest.shape[1]:],
                         past_key_values=cache, use_cache=True, logits_to_keep=1)
        rows = len(prompts) * n
        shared = None  # the prompts' keys and values held once; the cache then holds the rows' own tokens
        if n > 1 and self.shares_prompts and all(layer.keys.shape[-2] == mask.shape[1] for layer in cache.layers):
            group = torch.arange(len(prompts), device=self.device).repeat_interleave(n)
            shared = SharedPrefix([(layer.keys, layer.values) for layer in cache.layers], mask.bool(),
                                  left_padded_positions(mask), group)
            cache = import_transformers().DynamicCache(config=self.model.config)
        elif n > 1:
            cache.batch_repeat_interleave(n)
        if n > 1:
            mask = mask.repeat_interleave(n, dim=0)
        prompt_width = 0 if shared is None else mask.shape[1]  # the columns of the mask that are the prompt's
        logits = out.logits[:, -1, :].float().repeat_interleave(n, dim=0)

        record = Rows(self, prompts, n, self.eos_ids, stop, budget)
        active = torch.arange(rows, device=self.device)  # original row of each batch row
        for _ in range(max_new_tokens):
            next_tokens = draws(logits, active)
            keep = record.record(active.tolist(), next_tokens, logits)
            for b in sorted(set(range(len(active))) - set(keep)) if keeps_prefixes else ():
                row = int(active[b])  # ended: keep the prompt and all it drew but the last
                self._keep_prefix(cache, b, mask[b], ids[row // n] + record.generated[row][:-1], shared)
            if not keep:
                break
            if len(keep) < len(active):
                index = torch.tensor(keep, device=self.device)
                if cache.get_seq_length():
                    cache.batch_select_indices(index)
                active, mask, next_tokens = active[index], mask[index], next_tokens[index]
                if shared is not None:
                    shared.group = shared.group[index]
            mask = torch.cat([mask, mask.new_ones(len(active), 1)], dim=1)
            positions = left_padded_positions(mask)[:, -1:]
            extra = {}
            if shared is not None:
                shared.query_positions = positions
                extra = {"shared_prefix": shared}
            out = self.model(input_ids=next_tokens[:, None], attention_mask=mask[:, prompt_width:],
                             position_ids=positions, past_key_values=cache, use_cache=True, **extra)
            logits = out.logits[:, -1, :].float()
        self.seconds += time.perf_counter() - start
        return record.completions()

    def _budgets(self, lengths: Sequence[int], max_new_tokens: int) -> list[int]:
        """Each row's budget of new tokens: a continuation also ends ("length") where the model's context does,
        counted from its own prompt (not the padded width), so a prompt gets the same tokens in any batch."""
        if self.context is None:
            return [max_new_tokens] * len(lengths)
        if max(lengths) >= self.context:
            raise ValueError(f"a prompt is {max(lengths)} tokens, the whole {self.context}-token "
                             f"context of {self.name}; shorten it or use a model with a longer context")
        return [min(max_new_tokens, self.context - length) for length in lengths]

    def _left_padded(self, sequences: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids and attention mask, left-padded so every row's last token sits in the last column."""
        width = max(len(x) for x in sequences)
        ids = torch.full((len(sequences), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(sequences), width), dtype=torch.long)
        for row, x in enumerate(sequences):
            if x:
                ids[row, width - len(x):], mask[row, width - len(x):] = torch.tensor(x), 1
        return ids.to(self.device), mask.to(self.device)

    def _cache_of_kept_prefixes(self, ids: Sequence[Sequence[int]]) -> tuple[Any, torch.Tensor]:
        """A cache holding the kept keys and values of every row's first tokens, and its attention mask (width 0
        when none are kept).

        Every row then prefills the same number S of last tokens (the most any row lacks), so a row's kept part
        and its prefilled part are adjacent: the columns of a row's real tokens are contiguous, as in a plain
        left-padded batch, and a sliding-window layer, which masks by column, sees what it would see without
        the cache."""
        cache = import_transformers().DynamicCache(config=self.model.config)
        kept = [self.prefix_cache.longest_prefix(x) for x in ids] if self._can_keep(cache) else []
        prefill = max((len(x) - length for x, (length, _) in zip(ids, kept)), default=0)
        used = [max(0, len(x) - prefill) for x in ids] if kept else [0] * len(ids)
        width = max(used)
        mask = torch.zeros((len(ids), width), dtype=torch.long, device=self.device)
        if width == 0:
            return cache, mask
        self.prefix_cache.reused_tokens += sum(used)
        like = next(layers for _, layers in kept if layers is not None)
        for i, layer in enumerate(cache.layers):
            heads, _, dim = like[i][0].shape
            keys = like[i][0].new_zeros((len(ids), heads, width, dim))
            values = like[i][1].new_zeros((len(ids), heads, width, dim))
            for row, ((_, layers), length) in enumerate(zip(kept, used)):
                if length:
                    keys[row, :, width - length:] = layers[i][0][:, :length]
                    values[row, :, width - length:] = layers[i][1][:, :length]
            layer.update(keys, values)
        for row, length in enumerate(used):
            mask[row, width - length:] = 1
        return cache, mask

    def _can_keep(self, cache: Any) -> bool:
        """Prefixes are kept for caches of plain per-token keys and values (not recurrent or indexed layers)."""
        transformers = import_transformers()
        plain = (transformers.cache_utils.DynamicLayer, transformers.cache_utils.DynamicSlidingWindowLayer)
        return self.prefix_cache is not None and all(type(layer) in plain for layer in cache.layers)

    def _keep_prefix(self, cache: Any, row: int, mask: torch.Tensor, ids: list[int],
                     shared: SharedPrefix | None = None) -> None:
        """Keep batch row ``row``'s keys and values (its unmasked columns) for ``ids`` (a cache ``_can_keep``); not
        when a sliding-window layer has already dropped the row's first columns. With ``shared``, the row's
        prompt is there and the cache holds the row's own tokens only."""
        real = mask.bool()
        if int(real.sum()) != len(ids):
            return
        if shared is None:
            if any(layer.keys.shape[-2] != len(mask) for layer in cache.layers):
                return
            self.prefix_cache.add(ids, [(layer.keys[row][:, real], layer.values[row][:, real]) for layer in cache.layers])
            return
        own = len(mask) - shared.real.shape[1]
        if own and any(layer.keys.shape[-2] != own for layer in cache.layers):
            return
        prompt = shared.row_layers(int(shared.group[row]))
        self.prefix_cache.add(ids, [(torch.cat([k, layer.keys[row]], -2), torch.cat([v, layer.values[row]], -2))
                                    if own else (k, v) for (k, v), layer in zip(prompt, cache.layers)])

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def token_text(self, token: int) -> str:
        return self.tokenizer.decode([token])

    def prefix_tokens(self, token: int) -> list[int]:
        """The tokens whose text is a proper prefix of ``token``'s text (memoised: a few per token)."""
        if token not in self._prefixes:
            encode = functools.partial(self.tokenizer.encode, add_special_tokens=False)
            self._prefixes[token] = proper_prefix_tokens(self.token_text(token), encode)
        return self._prefixes[token]

    @torch.inference_mode()
    def continuation_logprobs(self, prompts: Sequence[str], continuations: Sequence[str],
                              batch_size: int = 8) -> list[torch.Tensor]:
        """Per-token log-probabilities of each continuation given its prompt (teacher forcing).

        Tokenises prompt and prompt+continuation and scores the tokens after the prompt's;
        returns one 1-D tensor per pair (empty for an empty continuation). A continuation this
        generator sampled from that prompt (a ``SampledText``) whose tokens are the ones this
        tokenisation gives brings its log-probabilities along: no forward pass is run for it.
        """
        if len(prompts) != len(continuations):
            raise ValueError("continuation_logprobs needs one prompt per continuation")
        start = time.perf_counter()
        results: list[torch.Tensor | None] = [self._carried(p, c) for p, c in zip(prompts, continuations)]
        todo = [i for i, r in enumerate(results) if r is None]
        for i in range(0, len(todo), batch_size):
            rows = todo[i:i + batch_size]
            ids, mask, n_conts = self._pairs([prompts[r] for r in rows], [continuations[r] for r in rows])
            # Left padding puts every continuation at the end of its row, so the LM head (a
            # 262k-way matmul for Gemma) only needs the last max(n_cont) + 1 positions.
            keep = min(ids.shape[1], max(n_conts) + 1)
            logits = self.model(input_ids=ids, attention_mask=mask, position_ids=left_padded_positions(mask),
                                logits_to_keep=keep).logits.float()
            logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, ids.shape[1] - keep + 1:, None])[..., 0]
            for row, n_cont in enumerate(n_conts):
                results[rows[row]] = logp[row, logp.shape[1] - n_cont:].cpu() if n_cont else torch.empty(0)
        self.seconds += time.perf_counter() - start
        return results

    def _carried(self, prompt: str, continuation: str) -> torch.Tensor | None:
        return carried_logprobs(self, prompt, continuation, lambda text: self.tokenizer(text)["input_ids"])

    def _pairs(self, prompts: Sequence[str], continuations: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """prompt + continuation of each pair, left-padded (ids, attention mask), and each continuation's token count:
        the tokens of the whole after the prompt's own tokenisation."""
        prompt_lens = [len(self.tokenizer(p)["input_ids"]) for p in prompts]
        enc = self.encode([p + c for p, c in zip(prompts, continuations)])
        ids, mask = enc["input_ids"], enc["attention_mask"]
        if self.context is not None and ids.shape[1] > self.context:
            raise ValueError(f"a prompt and its continuation are {ids.shape[1]} tokens, beyond the {self.context}-token "
                             f"context of {self.name}; shorten them or use a model with a longer context")
        return ids, mask, [max(0, length - plen) for plen, length in zip(prompt_lens, mask.sum(1).tolist())]

    @torch.inference_mode()
    def hidden_states(self, prompts: Sequence[str], continuations: Sequence[str],
                      batch_size: int = 8) -> list[torch.Tensor]:
        """The last layer's hidden states (after the final norm) at each token of prompt + continuation after the
        prompt's: one float32 [tokens, hidden] tensor per pair (tokenised as ``continuation_logprobs`` does)."""
        if len(prompts) != len(continuations):
            raise ValueError("hidden_states needs one prompt per continuation")
        start, results = time.perf_counter(), []
        for i in range(0, len(prompts), batch_size):
            ids, mask, n_conts = self._pairs(prompts[i:i + batch_size], continuations[i:i + batch_size])
            last = self.model(input_ids=ids, attention_mask=mask, position_ids=left_padded_positions(mask),
                              logits_to_keep=1, output_hidden_states=True).hidden_states[-1].float()
            for row, n_cont in enumerate(n_conts):
                results.append(last[row, last.shape[1] - n_cont:].cpu())  # left padding: the continuation at the end
        self.seconds += time.perf_counter() - start
        return results


def _contiguous_input(module: torch.nn.Module, args: tuple) -> tuple:
    return (args[0].contiguous(), *args[1:])


def left_padded_positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids that skip left padding: 0 at each row's first real token."""
    return (mask.long().cumsum(-1) - 1).clamp(min=0)
