"""Signals of the SmolVLM backbone (SmolVLA) and the attention math its layers share.

SmolVLA's layers are Llama decoder layers that SmolVLA runs by hand: its own RoPE (base 10000, halves
rotated), eager attention with a float32 softmax, and an action expert that either self-attends over
[prefix cache; suffix] or cross-attends to the VLM's cached keys/values through its own k/v projections.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ...engine.prefix import Prefix
from ...engine.signals import LayerInput, PrefixSignals

ROPE_BASE = 10_000.0


def rope(x: Tensor, positions: Tensor) -> Tensor:
    """Rotary embedding of `x` (`[B, L, H, D]`) at `positions` (`[B, L]`), computed in float32; keeps the dtype."""
    half = x.shape[-1] // 2
    inv_freq = ROPE_BASE ** (-torch.arange(half, dtype=torch.float32, device=x.device) * 2.0 / x.shape[-1])
    angles = (positions.float()[..., None] * inv_freq)[:, :, None, :]  # [B, L, 1, D/2]
    cos, sin = angles.cos(), angles.sin()
    first, second = x.float().split(half, dim=-1)
    return torch.cat([first * cos - second * sin, second * cos + first * sin], dim=-1).to(x.dtype)


def attend(q: Tensor, k: Tensor, v: Tensor, mask: Tensor, want_probs: bool = False):
    """Eager attention with grouped keys. q `[B, Q, H, D]`, k/v `[B, K, Hkv, D]`, mask `[B, Q, K]` bool.

    Returns (`[B, Q, H*D]` output in v's dtype, `[B, H, Q, K]` float32 probabilities or None).
    """
    groups = q.shape[2] // k.shape[2]
    k = k.repeat_interleave(groups, dim=2)
    v = v.repeat_interleave(groups, dim=2)
    scores = torch.einsum("bqhd,bkhd->bhqk", q.float(), k.float()) * q.shape[-1] ** -0.5
    scores = scores.masked_fill(~mask[:, None], torch.finfo(scores.dtype).min)
    probs = torch.softmax(scores, dim=-1)
    out = torch.einsum("bhqk,bkhd->bqhd", probs.to(v.dtype), v)
    return out.reshape(*out.shape[:2], -1), (probs if want_probs else None)


class SmolVLMSignals(PrefixSignals):
    """`PrefixSignals` over SmolVLM's layers; the language tokens sit after the special image tokens in the
    prefix (`[visual][special][language][state][padding]`)."""

    def __init__(self, model, prefix: Prefix, default_layer: int | None,
                 num_special: int, num_lang: int):  # fmt: skip
        super().__init__(model, prefix, default_layer)
        self.num_special, self.num_lang = num_special, num_lang

    def language_span(self, prefix: Prefix) -> tuple[int, int]:
        start = prefix.num_visual + self.num_special
        return start, start + self.num_lang

    def text_visual_logits(self) -> Tensor:
        layer = self.model.vlm_layers[0]
        attn = layer.self_attn
        normed = layer.input_layernorm(self.prefix.embs).to(attn.q_proj.weight.dtype)
        start, stop = self.language_span(self.prefix)
        num_visual, batch, head_dim = self.prefix.num_visual, normed.shape[0], attn.head_dim
        q = attn.q_proj(normed[:, start:stop]).view(batch, stop - start, -1, head_dim)
        k = attn.k_proj(normed[:, :num_visual]).view(batch, num_visual, -1, head_dim)
        k = k.repeat_interleave(q.shape[2] // k.shape[2], dim=2)
        logits = torch.einsum("bthd,bvhd->bhtv", q.float(), k.float()) * head_dim**-0.5  # [B, H, T, M]
        text_valid = self.prefix.pad[:, start:stop].float()
        per_text = logits.mean(dim=1)  # [B, T, M]
        return (per_text * text_valid[..., None]).sum(1) / text_valid.sum(1, keepdim=True).clamp(min=1)

    def _attention_rows(self, layer_idx: int, rec: LayerInput, rows: Tensor) -> Tensor:
        """Head-mean softmax attention `[B, Q, L]` of prefix rows `rows` (`[B, Q]`) at `layer_idx`."""
        layer = self.model.vlm_layers[layer_idx]
        attn = layer.self_attn
        hidden = rec.hidden.gather(1, rows[..., None].expand(-1, -1, rec.hidden.shape[-1]))
        normed = layer.input_layernorm(hidden).to(attn.q_proj.weight.dtype)
        q = attn.q_proj(normed).view(*rows.shape, -1, attn.head_dim)
        q = rope(q.float(), rec.prefix.pos.gather(1, rows))
        allowed = rec.mask_2d.gather(1, rows[..., None].expand(-1, -1, rec.mask_2d.shape[-1]))
        _, probs = attend(q, self.kv.keys[layer_idx].float(), self.kv.values[layer_idx].float(), allowed,
                          want_probs=True)  # fmt: skip
        return probs.mean(dim=1)
