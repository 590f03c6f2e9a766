"""Attention that reads a prompt's keys and values once for all the rows sampled from it (cascade attention).

The N continuations of one prompt share its keys and values. Copied into every row, each decode step
reads the prompt N times; held once, the step attends in two parts and merges them exactly. With the
scores s = q·k / √d split into the prompt's part P and the row's own part O,

    softmax(s) · v = w · softmax(s_P) · v_P + (1 − w) · softmax(s_O) · v_O,
    w = e^{m_P} / (e^{m_P} + e^{m_O}) = sigmoid(m_P − m_O),   m = logsumexp of the part's scores,

because both sides divide the same exponentials by the same total. The prompt part stacks the queries
of all the prompt's rows (and all query heads that share a key/value head) into one matrix product
against the one copy of the prompt, instead of N products over N copies
(``benchmarks/results/shared-prefix-attention.md``: 0.04× the attention time at N = 8).

The sampler (``CausalLMGenerator.sample``) prefills the prompts, keeps their caches here as a
``SharedPrefix`` and gives the model an empty cache for the rows' own tokens; the model's attention
layers find the prompt through the ``shared_prefix`` keyword. The prompt's padding and a layer's
sliding window are masked here (the model's own mask covers the rows' own tokens); with no
``shared_prefix`` the function is transformers' SDPA attention, unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

NAME = "consensus_shared_prefix"


@dataclass
class SharedPrefix:
    """The prompts' keys and values, held once.

    layers: per layer, keys and values ``[prompts, kv_heads, width, head_dim]`` (left-padded).
    real: ``[prompts, width]``, which columns are the prompt's tokens (not padding).
    positions: ``[prompts, width]``, each column's position.
    group: ``[rows]``, the prompt of each batch row (rows are dropped as they end).
    query_positions: ``[rows, q]``, the positions of this step's queries (the same for every row of a prompt:
        its rows are drawn in step).
    """

    layers: list[tuple[torch.Tensor, torch.Tensor]]
    real: torch.Tensor
    positions: torch.Tensor
    group: torch.Tensor
    query_positions: torch.Tensor | None = None

    def row_layers(self, prompt: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per layer, the keys and values ``[kv_heads, tokens, head_dim]`` of one prompt's real tokens."""
        real = self.real[prompt]
        return [(keys[prompt][:, real], values[prompt][:, real]) for keys, values in self.layers]


def install(model: Any) -> bool:
    """Route ``model``'s attention through ``shared_prefix_attention`` (SDPA when no prompt is shared); only for a
    model on transformers' SDPA attention whose attention layers know their cache index. Returns whether it did."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    config = getattr(model, "config", None)
    if getattr(config, "_attn_implementation", None) not in ("sdpa", NAME):
        return False
    layers = [m for m in model.modules() if type(m).__name__.endswith("Attention") and hasattr(m, "layer_idx")]
    if not layers or getattr(config, "attn_logit_softcapping", None) is not None:
        return False
    AttentionInterface.register(NAME, shared_prefix_attention)
    AttentionMaskInterface.register(NAME, sdpa_mask)
    model.set_attn_implementation(NAME)
    return True


def shared_prefix_attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                            attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                            sliding_window: int | None = None, shared_prefix: SharedPrefix | None = None,
                            **kwargs: Any) -> tuple[torch.Tensor, None]:
    """Attention over [the shared prompt; the row's own tokens], merged by their log-sum-exp (module docstring).
    ``query`` is ``[rows, heads, q, head_dim]``; ``key``/``value`` hold the rows' own tokens only."""
    if shared_prefix is None:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    rows, heads, q_len, dim = query.shape
    kv_heads = key.shape[1]
    shared = heads // kv_heads
    scale = dim**-0.5 if scaling is None else scaling
    queries = query.float()
    # The rows' own tokens, each row against its own keys, with the model's mask (causal, sliding window).
    own_keys = key.float().repeat_interleave(shared, dim=1)
    own_values = value.float().repeat_interleave(shared, dim=1)
    own = (queries @ own_keys.transpose(-1, -2)) * scale  # [rows, heads, q, own]
    if attention_mask is not None:
        mask = attention_mask[..., : own.shape[-1]]
        own = own.masked_fill(~mask, -torch.inf) if mask.dtype == torch.bool else own + mask
    own_mass = own.logsumexp(-1)
    own_out = own.softmax(-1) @ own_values
    # The prompt: the queries of all its rows (and of the heads sharing a key/value head) against its one copy.
    prompt_mass = torch.full_like(own_mass, -torch.inf)
    prompt_out = torch.zeros_like(own_out)
    prompt_keys, prompt_values = shared_prefix.layers[module.layer_idx]
    for prompt in shared_prefix.group.unique().tolist():
        its = (shared_prefix.group == prompt).nonzero()[:, 0]
        m = len(its)
        stacked = queries[its].view(m, kv_heads, shared, q_len, dim).permute(1, 0, 2, 3, 4).reshape(kv_heads, -1, dim)
        scores = (stacked @ prompt_keys[prompt].float().transpose(-1, -2)) * scale  # [kv_heads, m·shared·q, width]
        visible = shared_prefix.real[prompt][None, :].expand(q_len, -1)  # [q, width]
        if sliding_window is not None:
            distance = shared_prefix.query_positions[its[0]][:, None] - shared_prefix.positions[prompt][None, :]
            visible = visible & (distance < sliding_window)
        scores = scores.view(kv_heads, m, shared, q_len, -1).masked_fill(~visible, -torch.inf)
        mass = scores.logsumexp(-1)  # [kv_heads, m, shared, q]
        weights = torch.nan_to_num(scores.softmax(-1))  # a query that sees none of the prompt gets no part of it
        out = weights.reshape(kv_heads, -1, scores.shape[-1]) @ prompt_values[prompt].float()
        prompt_mass[its] = mass.permute(1, 0, 2, 3).reshape(m, heads, q_len)
        prompt_out[its] = out.view(kv_heads, m, shared, q_len, dim).permute(1, 0, 2, 3, 4).reshape(m, heads, q_len, dim)
    weight = torch.sigmoid(prompt_mass - own_mass)[..., None]  # e^{m_P} / (e^{m_P} + e^{m_O})
    merged = weight * prompt_out + (1 - weight) * own_out
    return merged.to(query.dtype).transpose(1, 2).contiguous(), None
