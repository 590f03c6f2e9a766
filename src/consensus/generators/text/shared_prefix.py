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

from dataclasses import dataclass, field
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
    _members: tuple[torch.Tensor, list[tuple[int, torch.Tensor]]] | None = field(default=None, repr=False)

    def members(self) -> list[tuple[int, torch.Tensor]]:
        """Each prompt with rows in the batch, and its rows: worked out once per step, for every layer."""
        if self._members is None or self._members[0] is not self.group:
            found = [(p, (self.group == p).nonzero()[:, 0]) for p in self.group.unique().tolist()]
            self._members = (self.group, found)
        return self._members[1]

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


def attend(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, visible: torch.Tensor | None,
           scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(q·kᵀ · scale) · v and the log-sum-exp of the scores, ``[batch, heads, q, ·]`` with as many heads in
    the keys as in the queries; ``visible`` (bool, broadcast to the scores) masks keys out. On the CPU, PyTorch's
    fused kernel in the model's dtype (it returns the log-sum-exp); elsewhere the same in float32."""
    if query.device.type == "cpu":
        bias = None if visible is None else torch.zeros(visible.shape, dtype=query.dtype).masked_fill(~visible, -torch.inf)
        out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(query, key, value, 0.0, False,
                                                                                 attn_mask=bias, scale=scale)[:2]
        return out, lse.float()
    scores = (query.float() @ key.float().transpose(-1, -2)) * scale
    if visible is not None:
        scores = scores.masked_fill(~visible, -torch.inf)
    return (torch.nan_to_num(scores.softmax(-1)) @ value.float()).to(query.dtype), scores.logsumexp(-1)


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
    # The query heads that share a key/value head go side by side along the query axis: one head each.
    queries = query.view(rows, kv_heads, shared * q_len, dim)
    # The rows' own tokens, each row against its own keys, with the model's mask (causal, sliding window).
    visible = None
    if attention_mask is not None:
        visible = attention_mask[..., : key.shape[-2]]
        visible = (visible if visible.dtype == torch.bool else visible == 0).repeat(1, 1, shared, 1)
    own_out, own_mass = attend(queries, key, value, visible, scale)  # [rows, kv_heads, shared·q, ·]
    # The prompt: the queries of all its rows against its one copy, as one batch row.
    prompt_out, prompt_mass = torch.empty_like(own_out), torch.empty_like(own_mass)
    prompt_keys, prompt_values = shared_prefix.layers[module.layer_idx]
    for prompt, its in shared_prefix.members():
        stacked = queries[its].transpose(0, 1).reshape(1, kv_heads, -1, dim)  # [1, kv_heads, m·shared·q, dim]
        visible = shared_prefix.real[prompt][None, :].expand(q_len, -1)  # [q, width]
        if sliding_window is not None:
            distance = shared_prefix.query_positions[its[0]][:, None] - shared_prefix.positions[prompt][None, :]
            visible = visible & (distance < sliding_window)
        visible = None if bool(visible.all()) else visible.repeat(len(its) * shared, 1)
        out, mass = attend(stacked, prompt_keys[prompt : prompt + 1], prompt_values[prompt : prompt + 1], visible, scale)
        prompt_out[its] = out.view(kv_heads, len(its), shared * q_len, dim).transpose(0, 1)
        prompt_mass[its] = mass.view(kv_heads, len(its), shared * q_len).transpose(0, 1)
    weight = torch.sigmoid(prompt_mass - own_mass)[..., None]  # e^{m_P} / (e^{m_P} + e^{m_O})
    merged = weight * prompt_out.float() + (1 - weight) * own_out.float()
    return merged.to(query.dtype).view(rows, heads, q_len, dim).transpose(1, 2).contiguous(), None
