"""Text generator over llama.cpp (``llama-cpp-python``): any GGUF model, quantised weights, batched decoding.

Decoding a small LM on a CPU is memory-bound: every step reads all the weights once, so its speed is the memory
bandwidth over the weights' bytes. A Q4_K_M GGUF is about a quarter of float32's bytes, and llama.cpp's kernels
read it at close to the bandwidth; the torch path cannot pass float32's bound, and emulates bfloat16 on CPUs
without bf16 instructions.

Every row of a call is a llama.cpp sequence in one unified KV cache, so rows share the cells they have in common:
the n rows of a prompt are the prompt's sequence copied n times (``seq_cp`` tags the prompt's cells, it copies
nothing), and all rows decode together, one ``llama_decode`` a token. What a call read stays in the cache for
later prompts that extend it: a row that ends keeps its sequence (the prompt and all it drew but the last token),
so step-level consensus, which prompts with the partial solutions the previous step sampled, prefills only the
tokens after them, and a new problem's few-shot prompt starts after the exemplars. A call keeps only the sequences
its own prompts start from, so the cells the attention reads stay those of the work at hand.

The draws are the torch path's (``consensus.generators.text.decoding``): the logits are read back and sampled
with the caller's seeded ``torch.Generator``, top-k then nucleus, so a seed gives the same draws run after run.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from consensus.generators.text.decoding import Draws, Rows, carried_logprobs, check_sample_args, proper_prefix_tokens
from consensus.generators.text.protocol import Completion

LLAMA_INSTALL = ("pip install llama-cpp-python==0.3.36, built from source with portable flags: see the README's "
                 "install command")


GGML_LOG_LEVEL_ERROR = 4


def _import_llama_cpp():
    try:
        import llama_cpp
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError(f"the llama.cpp backend needs llama-cpp-python: {LLAMA_INSTALL}") from e
    llama_cpp.llama_log_set(_errors_only, ctypes.c_void_p(0))
    return llama_cpp


def _print_errors(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    """llama.cpp's log, errors only: its notes on loading (repacked buffers, token types) ask nothing of the user."""
    if level == GGML_LOG_LEVEL_ERROR:
        print(text.decode("utf-8", errors="replace"), end="", file=sys.stderr, flush=True)


try:  # the C callback is built once and kept alive here: llama.cpp holds a pointer to it
    from llama_cpp import llama_log_callback as _callback_type

    _errors_only = _callback_type(_print_errors)
except ImportError:  # pragma: no cover - depends on the install
    _errors_only = None


class KeptSequences:
    """The sequences a generator keeps in its KV cache for later prompts, least recently used first, and the free
    sequence ids. A sequence is a tag on the cells it owns: keeping one costs a cell only for tokens no other
    sequence holds."""

    def __init__(self, llama_cpp, memory, n_seq_max: int):
        self._lc, self.memory, self._n_seq_max = llama_cpp, memory, n_seq_max
        self.reused_tokens = 0  # prompt tokens a call took from a kept sequence instead of reading them
        self.clear()

    def clear(self) -> None:
        """Every sequence free, none kept, every cell empty (also after a call that failed halfway): llama.cpp's
        kernels round a row by where its cells lie, so what is drawn next then depends on nothing drawn before."""
        self.free = list(range(self._n_seq_max - 1, -1, -1))
        self.kept: OrderedDict[int, tuple[int, ...]] = OrderedDict()
        self._lc.llama_memory_clear(self.memory, True)

    @property
    def sequences(self) -> int:
        return len(self.kept)

    def take(self, pinned: set[int] = frozenset()) -> int:
        """A free sequence id; when none is, the least recently used kept sequence not ``pinned`` goes."""
        if not self.free:
            oldest = next((seq for seq in self.kept if seq not in pinned), None)
            if oldest is not None:
                self.release(oldest)
        if not self.free:
            raise RuntimeError("every llama.cpp sequence is in use: ask for fewer rows a call (prompts x n), or build "
                               "the generator with a larger n_seq_max")
        return self.free.pop()

    def release(self, seq: int) -> None:
        self.kept.pop(seq, None)
        self._lc.llama_memory_seq_rm(self.memory, seq, -1, -1)
        self.free.append(seq)

    def keep(self, seq: int, tokens: Sequence[int]) -> None:
        """Keep ``seq``, whose cells hold ``tokens``, unless a kept sequence already holds them; kept sequences that
        hold a prefix of them go (their cells stay, owned by ``seq`` too)."""
        tokens = tuple(tokens)
        for other, held in list(self.kept.items()):
            if held[:len(tokens)] == tokens:
                self.kept.move_to_end(other)
                self.release(seq)
                return
            if tokens[:len(held)] == held:
                self.release(other)
        self.kept[seq] = tokens

    def longest_prefix(self, ids: Sequence[int], at_most: int) -> tuple[int | None, int]:
        """The kept sequence sharing the longest prefix with ``ids`` and that length, capped at ``at_most``."""
        best, length = None, 0
        for seq, held in self.kept.items():
            common = _common_prefix(held, ids)
            if common > length:
                best, length = seq, common
        length = min(length, at_most)
        if best is None or length <= 0:
            return None, 0
        self.kept.move_to_end(best)
        return best, length

    def keep_only(self, seqs: set[int]) -> None:
        for seq in [s for s in self.kept if s not in seqs]:
            self.release(seq)

    def start(self, prompts: Sequence[Sequence[int]], at_most: Sequence[int],
              drop_others: bool = False) -> list[tuple[int, int]]:
        """A new sequence per prompt, holding the longest prefix of it (at most its ``at_most`` tokens) that a kept
        sequence holds: ``(sequence, length)`` each. The sources stay pinned until every prompt has its copy, so
        taking an id never evicts one still to be copied from; ``drop_others`` first releases every other kept
        sequence."""
        sources = [self.longest_prefix(ids, limit) for ids, limit in zip(prompts, at_most)]
        pinned = {seq for seq, _ in sources if seq is not None}
        if drop_others:
            self.keep_only(pinned)
        started = []
        for source, length in sources:
            seq = self.take(pinned)
            if source is not None:
                self._lc.llama_memory_seq_cp(self.memory, source, seq, 0, length)
                self.reused_tokens += length
            started.append((seq, length))
        return started


class LlamaCppGenerator:
    """A ``TextGenerator`` over a GGUF model run by llama.cpp, with an optional GGUF LoRA adapter.

    ``n_ctx`` is the KV cache's size in tokens, shared by every row of a call (a prompt's cells once, each row's own
    tokens once); ``n_seq_max`` bounds the rows of a call plus the sequences kept for later prompts. ``n_threads``
    defaults to the cores this process may use. Gradient feedback needs the torch path, which can differentiate.
    """

    backend = "llama.cpp"

    def __init__(self, model_path: str | Path, lora: str | Path | None = None, name: str | None = None,
                 n_ctx: int = 8192, n_seq_max: int = 128, n_batch: int = 512, n_threads: int | None = None,
                 n_gpu_layers: int = 0):
        lc = self._lc = _import_llama_cpp()
        if not Path(model_path).is_file():
            raise FileNotFoundError(f"no GGUF model at {model_path}")
        lc.llama_backend_init()
        params = lc.llama_model_default_params()
        params.n_gpu_layers = n_gpu_layers
        self._model = lc.llama_model_load_from_file(str(model_path).encode(), params)
        if not self._model:
            raise ValueError(f"llama.cpp could not load {model_path}: is it a GGUF file of a model it supports?")
        threads = n_threads or len(os.sched_getaffinity(0))
        context = lc.llama_context_default_params()
        n_batch = min(n_batch, n_ctx)  # llama.cpp aborts on a batch larger than its cache
        context.n_ctx, context.n_batch, context.n_ubatch = n_ctx, n_batch, n_batch
        context.n_seq_max = min(n_seq_max, lc.llama_max_parallel_sequences())
        context.n_threads = context.n_threads_batch = threads
        context.kv_unified = True  # one cell store for all sequences: rows share their prompt's cells
        context.swa_full = True  # sliding-window layers keep every cell too, so a kept sequence can be extended
        # Plain attention, not flash attention: measured here, its rows read the same numbers whichever cells they
        # lie in and whatever else is in the batch (flash attention's tiles rounded identical rows of one call
        # differently, and a continuation's log-probabilities by up to 0.3 nats with its batch), at about the speed
        context.flash_attn_type = 0
        self._ctx = lc.llama_init_from_model(self._model, context)
        if not self._ctx:
            raise RuntimeError(f"llama.cpp could not make a context of {n_ctx} tokens for {model_path}")
        if lora is not None:
            self._adapter = lc.llama_adapter_lora_init(self._model, str(lora).encode())
            if not self._adapter:
                raise ValueError(f"llama.cpp could not load the LoRA adapter {lora} for {model_path}")
            adapters, scales = (lc.llama_adapter_lora_p_ctypes * 1)(self._adapter), (ctypes.c_float * 1)(1.0)
            lc.llama_set_adapters_lora(self._ctx, adapters, 1, scales)
        self._vocab = lc.llama_model_get_vocab(self._model)
        self.vocab_size = lc.llama_vocab_n_tokens(self._vocab)
        self.n_embd = lc.llama_model_n_embd(self._model)
        self.model_path, self.n_batch, self.n_ctx, self.threads = Path(model_path), n_batch, n_ctx, threads
        self.name = name or Path(model_path).name + ("" if lora is None else f" + {Path(lora).name}")
        # The longest sequence a row may grow to: the model's own context, or the whole cache if that is smaller
        # (llama.cpp aborts on positions past it)
        self.context = min(lc.llama_model_n_ctx_train(self._model), n_ctx)
        self.eos_ids = {t for t in (lc.llama_vocab_eos(self._vocab), lc.llama_vocab_eot(self._vocab)) if t >= 0}
        self.seconds = 0.0  # wall time spent inside this generator, for overhead accounting
        self.prefix_cache = KeptSequences(lc, lc.llama_get_memory(self._ctx), context.n_seq_max)
        self._batch = lc.llama_batch_init(n_batch, 0, 1)
        self._prefixes: dict[int, list[int]] = {}
        self._piece = ctypes.create_string_buffer(256)

    def __del__(self):
        lc = getattr(self, "_lc", None)
        if lc is None:
            return
        if getattr(self, "_batch", None) is not None:
            lc.llama_batch_free(self._batch)
        if getattr(self, "_ctx", None):
            lc.llama_free(self._ctx)
        if getattr(self, "_model", None):
            lc.llama_model_free(self._model)

    # -- the vocabulary ------------------------------------------------------------------------------------------

    def tokenize(self, text: str, special: bool = True) -> list[int]:
        """Token ids of ``text``, beginning with the model's BOS token when ``special`` and the model asks for one."""
        data = text.encode("utf-8")
        out = (self._lc.llama_token * (len(data) + 8))()
        count = self._lc.llama_tokenize(self._vocab, data, len(data), out, len(out), special, False)
        return list(out[:count])

    def decode(self, ids: Sequence[int]) -> str:
        if not ids:
            return ""
        tokens = (self._lc.llama_token * len(ids))(*ids)
        size = 8 * len(ids) + 64
        while True:
            text = ctypes.create_string_buffer(size)
            count = self._lc.llama_detokenize(self._vocab, tokens, len(ids), text, size, False, False)
            if count >= 0:
                return text.raw[:count].decode("utf-8", errors="replace")
            size = -count

    def token_text(self, token: int) -> str:
        count = self._lc.llama_token_to_piece(self._vocab, token, self._piece, len(self._piece), 0, False)
        return self._piece.raw[:max(count, 0)].decode("utf-8", errors="replace")

    def prefix_tokens(self, token: int) -> list[int]:
        """The tokens whose text is a proper prefix of ``token``'s text (memoised: a few per token)."""
        if token not in self._prefixes:
            self._prefixes[token] = proper_prefix_tokens(self.token_text(token),
                                                         functools.partial(self.tokenize, special=False))
        return self._prefixes[token]

    # -- decoding ------------------------------------------------------------------------------------------------

    def _decode(self, entries: Sequence[tuple[int, int, int, bool]], view: bool = False,
                hidden: bool = False) -> torch.Tensor:
        """Feed ``(token, position, sequence, wants logits)`` entries, at most ``n_batch`` a call; the logits of those
        that want them, in order, as a float32 [outputs, vocab] tensor (``hidden``: their last layer's hidden states
        after the final norm, [outputs, n_embd], instead). ``view``: when one call holds them all, the tensor is
        llama.cpp's own buffer, valid until the next call (the decoding loop reads it before then)."""
        lc, batch, out = self._lc, self._batch, []
        width = self.n_embd if hidden else self.vocab_size
        for start in range(0, len(entries), self.n_batch):
            chunk = entries[start:start + self.n_batch]
            batch.n_tokens = len(chunk)
            for i, (token, position, seq, logits) in enumerate(chunk):
                batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = token, position, 1, logits
                batch.seq_id[i][0] = seq
            while (status := lc.llama_decode(self._ctx, batch)) == 1 and self.prefix_cache.kept:
                self.prefix_cache.release(next(iter(self.prefix_cache.kept)))  # full: the oldest kept goes
            if status != 0:
                raise RuntimeError(f"llama.cpp could not decode a batch of {len(chunk)} tokens (status {status})"
                                   + (f": its {self.n_ctx}-token KV cache is full; build the generator with a larger "
                                      "n_ctx or ask for fewer rows" if status == 1 else ""))
            wanted = sum(1 for entry in chunk if entry[3])
            if wanted and hidden:  # by batch index: the bulk buffer's rows are not in the batch's order here
                out.append(torch.stack([torch.from_numpy(np.ctypeslib.as_array(
                    lc.llama_get_embeddings_ith(self._ctx, i), shape=(width,))).clone()
                    for i, entry in enumerate(chunk) if entry[3]]))
            elif wanted:
                logits = torch.from_numpy(np.ctypeslib.as_array(lc.llama_get_logits(self._ctx), shape=(wanted, width)))
                last = start + self.n_batch >= len(entries)  # a later call overwrites llama.cpp's buffer
                out.append(logits if view and last else logits.clone())
        if not out:
            return torch.empty(0, width)
        return out[0] if len(out) == 1 else torch.cat(out)

    def _prefill(self, prompts: Sequence[Sequence[int]]) -> tuple[list[int], torch.Tensor]:
        """A new sequence per prompt holding all its tokens, each started from the kept sequence it extends furthest
        (the other kept sequences are released); and the logits after each prompt's last token."""
        started = self.prefix_cache.start(prompts, [len(ids) - 1 for ids in prompts], drop_others=True)
        entries = [(tok, pos, seq, pos == len(ids) - 1)
                   for ids, (seq, length) in zip(prompts, started) for pos, tok in enumerate(ids) if pos >= length]
        return [seq for seq, _ in started], self._decode(entries, view=True)

    def sample(self, prompts: Sequence[str], n: int = 1, *, max_new_tokens: int = 128, temperature: float = 1.0,
               top_p: float = 1.0, top_k: int = 64, stop: Sequence[str] = (),
               generator: torch.Generator | Sequence[torch.Generator] | None = None) -> list[list[Completion]]:
        """Draw ``n`` continuations of every prompt; ``temperature=0`` is greedy decoding. Returns one list of ``n``
        completions per prompt; with one generator per prompt, each prompt's draws are those of a call of its own."""
        check_sample_args(prompts, n, max_new_tokens, temperature, top_p, top_k, generator)
        start = time.perf_counter()
        ids = [self.tokenize(p) for p in prompts]
        longest = max(len(x) for x in ids)
        if longest >= self.context:
            raise ValueError(f"a prompt is {longest} tokens, the whole {self.context}-token context of {self.name}; "
                             "shorten it or use a model with a longer context")
        budget = [min(max_new_tokens, self.context - len(x)) for x in ids]
        draws = Draws(len(prompts), n, temperature, top_p, top_k, generator)
        record = Rows(self, prompts, n, self.eos_ids, stop, budget)
        try:
            self._decode_rows(ids, n, draws, record, budget)
        except BaseException:  # its sequences half taken: start the cache afresh, so the next call finds it sound
            self.prefix_cache.clear()
            raise
        self.seconds += time.perf_counter() - start
        return record.completions()

    def _decode_rows(self, ids: list[list[int]], n: int, draws: Draws, record: Rows, budget: list[int]) -> None:
        """Prefill the prompts, copy each into its n rows and decode them all together until every row ends."""
        prompt_seqs, logits = self._prefill(ids)
        kept, memory = self.prefix_cache, self.prefix_cache.memory
        rows = []  # the sequence of each row
        for seq, x in zip(prompt_seqs, ids):
            for _ in range(n):
                rows.append(kept.take())
                self._lc.llama_memory_seq_cp(memory, seq, rows[-1], 0, len(x))
            kept.keep(seq, x)
        logits = logits.repeat_interleave(n, dim=0)
        active = list(range(len(rows)))  # original row of each batch row
        for _ in range(max(budget)):
            tokens = draws(logits, torch.tensor(active))
            keep = record.record(active, tokens, logits)
            for b in set(range(len(active))) - set(keep):
                row = active[b]  # ended: keep the prompt and all it drew but the last
                kept.keep(rows[row], ids[row // n] + record.generated[row][:-1])
            if not keep:
                break
            active, tokens = [active[b] for b in keep], tokens[keep].tolist()
            logits = self._decode([(tok, len(ids[row // n]) + len(record.generated[row]) - 1, rows[row], True)
                                   for row, tok in zip(active, tokens)], view=True)

    def continuation_logprobs(self, prompts: Sequence[str], continuations: Sequence[str],
                              batch_size: int = 64) -> list[torch.Tensor]:
        """Per-token log-probabilities of each continuation given its prompt (teacher forcing): the tokens of
        prompt + continuation after the prompt's. A ``SampledText`` this generator drew from that prompt, whose
        tokens are the ones this tokenisation gives, brings its log-probabilities along, with no pass of the model.
        The others are read ``batch_size`` at a time, each from the kept sequence that holds most of its prompt."""
        if len(prompts) != len(continuations):
            raise ValueError("continuation_logprobs needs one prompt per continuation")
        start = time.perf_counter()
        results: list[torch.Tensor | None] = [self._carried(p, c) for p, c in zip(prompts, continuations)]
        todo = [i for i, r in enumerate(results) if r is None]
        kept = self.prefix_cache
        for group in (todo[i:i + batch_size] for i in range(0, len(todo), batch_size)):
            texts = [self.tokenize(prompts[i] + continuations[i]) for i in group]
            # the logits at position t score token t + 1: from the prompt's last token on
            firsts = [min(len(self.tokenize(prompts[i])), len(ids)) - 1 for i, ids in zip(group, texts)]
            if (longest := max(map(len, texts))) > self.context:
                raise ValueError(f"a prompt and its continuation are {longest} tokens, beyond the "
                                 f"{self.context}-token context of {self.name}; shorten them")
            try:
                started = kept.start(texts, firsts)
                entries, spans = [], []
                for ids, first, (seq, length) in zip(texts, firsts, started):
                    wanted = [(tok, pos, seq, first <= pos < len(ids) - 1)
                              for pos, tok in enumerate(ids) if pos >= length]
                    spans.append((ids[first + 1:], sum(w[3] for w in wanted)))
                    entries += wanted
                logits = self._decode(entries)
            except BaseException:
                kept.clear()
                raise
            for seq, _ in started:
                kept.release(seq)
            for i, (targets, count) in zip(group, spans):
                rows, logits = logits[:count], logits[count:]
                results[i] = (torch.log_softmax(rows, -1).gather(-1, torch.tensor(targets)[:, None])[:, 0]
                              if count else torch.empty(0))
        self.seconds += time.perf_counter() - start
        return results

    def _carried(self, prompt: str, continuation: str) -> torch.Tensor | None:
        return carried_logprobs(self, prompt, continuation, self.tokenize)

    def hidden_states(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[torch.Tensor]:
        """The last layer's hidden states (after the final norm) at each token of prompt + continuation after the
        prompt's, given all before it: one float32 [tokens, n_embd] tensor per pair. Each pair is read in a call of
        its own into an empty cache (the kept sequences are forgotten first), so its states are the same whatever
        else is read with it or was kept before: batching pairs, starting from a kept prompt or beside other kept
        cells moves them by up to about 1% here, and what a value head reads for a candidate should not depend on
        the other candidates."""
        if len(prompts) != len(continuations):
            raise ValueError("hidden_states needs one prompt per continuation")
        start, kept, results = time.perf_counter(), self.prefix_cache, []
        kept.clear()
        self._lc.llama_set_embeddings(self._ctx, True)
        try:
            for prompt, continuation in zip(prompts, continuations):
                ids = self.tokenize(prompt + continuation)
                first = min(len(self.tokenize(prompt)), len(ids))
                if len(ids) > self.context:
                    raise ValueError(f"a prompt and its continuation are {len(ids)} tokens, beyond the "
                                     f"{self.context}-token context of {self.name}; shorten them")
                seq = kept.take()
                try:
                    results.append(self._decode([(tok, pos, seq, pos >= first) for pos, tok in enumerate(ids)],
                                                hidden=True))
                finally:
                    kept.release(seq)
        except BaseException:
            kept.clear()
            raise
        finally:
            self._lc.llama_set_embeddings(self._ctx, False)
            self.seconds += time.perf_counter() - start
        return results


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    m = min(len(a), len(b))
    return next((i for i in range(m) if a[i] != b[i]), m)
