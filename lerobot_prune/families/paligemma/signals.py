"""Signals of the PaliGemma backbones (π0, π0.5): attention rows recomputed from a Gemma layer's own
projections, ADP's text·vision logits, and the hooks that hand the action expert's attention to the
engine's `ExpertAttentionCapture`."""

from __future__ import annotations

import torch
from torch import Tensor
from transformers.models.gemma.modeling_gemma import repeat_kv, rotate_half

from ...engine.signals import LayerInput, PrefixSignals


class PaliGemmaSignals(PrefixSignals):
    """`PrefixSignals` over Gemma layers; the language tokens follow the visual ones in the prefix."""

    def text_visual_logits(self) -> Tensor:
        layer = self.model.language_model.layers[0]
        attn = layer.self_attn
        embs = self.prefix.embs.to(attn.q_proj.weight.dtype)
        normed, _ = layer.input_layernorm(embs)
        num_visual, batch = self.prefix.num_visual, embs.shape[0]
        q = attn.q_proj(normed[:, num_visual:]).view(
            batch, -1, attn.config.num_attention_heads, attn.head_dim
        )
        k = attn.k_proj(normed[:, :num_visual]).view(batch, num_visual, -1, attn.head_dim)
        k = k.repeat_interleave(attn.num_key_value_groups, dim=2)
        logits = torch.einsum("bthd,bvhd->bhtv", q.float(), k.float()) * attn.head_dim**-0.5  # [B, H, T, M]
        text_valid = self.prefix.pad[:, num_visual:].float()
        per_text = logits.mean(dim=1)  # [B, T, M]
        return (per_text * text_valid[..., None]).sum(1) / text_valid.sum(1, keepdim=True).clamp(min=1)

    def _attention_rows(self, layer_idx: int, rec: LayerInput, rows: Tensor) -> Tensor:
        """Head-mean softmax attention `[B, Q, L]` of prefix rows `rows` (`[B, Q]`) at `layer_idx`."""
        lm = self.model.language_model
        attn = lm.layers[layer_idx].self_attn
        hidden = rec.hidden.gather(1, rows[..., None].expand(-1, -1, rec.hidden.shape[-1]))
        normed, _ = lm.layers[layer_idx].input_layernorm(hidden)
        batch, num_rows = rows.shape
        q = attn.q_proj(normed).view(batch, num_rows, -1, attn.head_dim).transpose(1, 2).float()
        cos, sin = lm.rotary_emb(q, rec.prefix.pos.gather(1, rows))
        q = q * cos[:, None] + rotate_half(q) * sin[:, None]
        keys = repeat_kv(self.kv.keys[layer_idx], attn.num_key_value_groups).float()
        logits = torch.matmul(q, keys.transpose(2, 3)) * attn.scaling
        allowed = rec.mask_2d.gather(1, rows[..., None].expand(-1, -1, rec.mask_2d.shape[-1]))
        logits = logits.masked_fill(~allowed[:, None], torch.finfo(logits.dtype).min)
        return torch.softmax(logits, dim=-1).mean(dim=1)


def register_expert_hooks(model) -> None:
    """Installs, once per model, forward hooks on the expert's attention modules that pass their attention
    weights to `model.active_capture` (when one is started). Permanent hooks keep hook registration out of
    the denoising loop, where torch.compile cannot trace it. The hook is a bound method, so a deep copy of
    the model hooks the copy."""
    model.active_capture = None
    for layer in model.expert_model.layers:
        layer.self_attn.register_forward_hook(model._expert_attention_hook)  # noqa: SLF001
