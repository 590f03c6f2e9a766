"""Keys and values of token sequences the model has already read, for later prompts that start with them.

Step-level consensus prompts the LM with the question plus a partial solution at every step, and every
partial solution is one the LM sampled in the step before: the keys and values of all its tokens were
computed then. Kept here, the next step's prefill only reads the tokens after the longest kept prefix
(usually one: the newline that ended the line). Few-shot prompts share their exemplars across problems,
so a new problem's prefill starts after the exemplars too.

Reuse is exact: in a causal LM the keys and values of token t depend only on tokens 0..t at positions
0..t, and the sampler gives every row positions that skip its padding. Memory is bounded: entries are
evicted least recently used first once their total size passes ``max_bytes``, and an entry that is a
prefix of a newer one is dropped, since the newer one holds it.

In bfloat16 the reused keys and values carry the rounding of the batch that computed them, so draws can
depend on what was kept before. A harness that must reproduce any subset of its items (a resumed run)
empties the cache at each batch of items (``forget_kept_prefixes``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch

Layers = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys and values, each [heads, tokens, head_dim]


class PrefixCache:
    """Least-recently-used store of (token ids -> per-layer keys and values), at most ``max_bytes`` in all."""

    def __init__(self, max_bytes: int = 512 * 2**20):
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = max_bytes
        self.bytes = 0
        self.reused_tokens = 0  # tokens whose keys and values a reader took from here (it counts them)
        self._entries: OrderedDict[tuple[int, ...], tuple[torch.Tensor, Layers, int]] = OrderedDict()

    @property
    def sequences(self) -> int:
        """How many token sequences are kept."""
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()
        self.bytes = 0

    def longest_prefix(self, ids: Sequence[int]) -> tuple[int, Layers | None]:
        """The longest kept prefix of ``ids``, at most all but its last token (whose logits the caller still needs),
        as its length and its layers sliced to it; ``(0, None)`` when nothing is kept."""
        query = torch.tensor(ids)
        best, best_key = 0, None
        for key, (kept, _, _) in self._entries.items():
            length = _common_prefix(kept, query)
            if length > best:
                best, best_key = length, key
        best = min(best, len(ids) - 1)
        if best <= 0:
            return 0, None
        self._entries.move_to_end(best_key)
        return best, [(k[:, :best], v[:, :best]) for k, v in self._entries[best_key][1]]

    def add(self, ids: Sequence[int], layers: Layers) -> None:
        """Keep ``layers`` (each [heads, len(ids), head_dim]) for ``ids``, unless a kept entry already holds them;
        entries that are prefixes of ``ids`` go, and then the least recently used until the total fits."""
        key = tuple(ids)
        size = sum(k.nbytes + v.nbytes for k, v in layers)
        if size > self.max_bytes or not key:
            return
        query = torch.tensor(key)
        for old, (kept, _, old_size) in list(self._entries.items()):
            length = _common_prefix(kept, query)
            if length == len(key):  # already held, by this entry or a longer one
                self._entries.move_to_end(old)
                return
            if length == len(old):
                del self._entries[old]
                self.bytes -= old_size
        self._entries[key] = (query, layers, size)
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, (_, _, old_size) = self._entries.popitem(last=False)
            self.bytes -= old_size


def forget_kept_prefixes(lm: object) -> None:
    """Empty ``lm``'s kept prefixes, if it keeps any: what it draws next depends on nothing it computed before."""
    cache = getattr(lm, "prefix_cache", None)
    if cache is not None:
        cache.clear()


def _common_prefix(a: torch.Tensor, b: torch.Tensor) -> int:
    m = min(len(a), len(b))
    differ = (a[:m] != b[:m]).nonzero()
    return int(differ[0, 0]) if len(differ) else m
