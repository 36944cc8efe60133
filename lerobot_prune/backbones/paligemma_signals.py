"""Signals of the PaliGemma backbones (π0, π0.5): attention rows recomputed from a layer's own
projections, ADP's text·vision logits, and the action expert's attention read from forward hooks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor
from transformers.models.gemma.modeling_gemma import repeat_kv, rotate_half

from ..strategies.base import AttentionQuery, SignalSource
from .prefix import Prefix, PrefixKV, VisualLayout

if TYPE_CHECKING:
    from .paligemma import PaliGemmaPruning


@dataclass(frozen=True)
class _LayerInput:
    hidden: Tensor  # [B, L_l, D]
    prefix: Prefix
    mask_2d: Tensor  # [B, L_l, L_l] bool
    layout: VisualLayout


class PaliGemmaSignals(SignalSource):
    """Signals of one call, computed from the layers' own projections in float32.

    Attention rows are recomputed from a layer's recorded input and cached keys, so only the rows a
    strategy asks for are computed. Layer `K-1` is always recorded; others on request.
    """

    def __init__(self, model: PaliGemmaPruning, prefix: Prefix, default_layer: int | None):
        self.model, self.prefix, self.default_layer = model, prefix, default_layer
        self.kv: PrefixKV | None = None
        self.wanted: set[int] = set() if default_layer is None else {default_layer}
        self.records: dict[int, _LayerInput] = {}
        self.layers_run = 0

    def capture_layers(self, layers) -> None:
        layers = set(layers)
        depth = len(self.model.language_model.layers)
        if bad := sorted(l for l in layers if not 0 <= l < depth):  # noqa: E741
            raise ValueError(
                f"layers {bad} are outside [0, {depth - 1}] for this backbone ({depth} VLM layers)."
            )
        if late := sorted(l for l in layers if l < self.layers_run and l not in self.records):  # noqa: E741
            raise RuntimeError(f"layers {late} already ran; request them in prepare().")
        self.wanted |= layers

    def record(self, layer_idx: int, hidden: Tensor, prefix: Prefix, mask_2d: Tensor, layout: VisualLayout):
        self.layers_run = layer_idx + 1
        if layer_idx in self.wanted:
            self.records[layer_idx] = _LayerInput(hidden, prefix, mask_2d, layout)

    def language_span(self, prefix: Prefix) -> tuple[int, int]:
        """Columns `[start, stop)` of the language tokens in `prefix` (here: everything after the visual)."""
        return prefix.num_visual, prefix.pad.shape[1]

    def visual_embeds(self) -> Tensor:
        return self.prefix.embs[:, : self.prefix.num_visual]

    def text_embeds(self) -> tuple[Tensor, Tensor]:
        start, stop = self.language_span(self.prefix)
        return self.prefix.embs[:, start:stop], self.prefix.pad[:, start:stop]

    def attention_to_visual(self, query: AttentionQuery, layer: int | None = None) -> Tensor:
        layer = self.default_layer if layer is None else layer
        if layer not in self.records:
            raise RuntimeError(
                f"attention at VLM layer {layer} was not captured; request it with "
                f"view.signals.capture_layers([{layer}]) in prepare() (in-LLM strategies get layer K-1)."
            )
        rec = self.records[layer]
        prefix = rec.prefix
        batch, length = prefix.pad.shape
        start, stop = self.language_span(prefix)
        lang_pad = prefix.pad[:, start:stop]
        if isinstance(query, str) and query != "all" and not bool(lang_pad.any(dim=1).all()):
            raise ValueError(
                f"attention query {query!r} needs a language token in every sample, but a prompt is empty; "
                "check that the batch carries a task string (or use query='all')."
            )
        lang_rows = torch.arange(start, stop, device=prefix.pad.device).expand(batch, -1)
        if isinstance(query, Tensor):
            rows, row_weight = lang_rows, query.float() * lang_pad
        elif query == "last_text":
            last = (lang_pad.long() * torch.arange(1, lang_pad.shape[1] + 1, device=lang_pad.device)).argmax(
                1
            )
            rows = (start + last)[:, None]
            row_weight = lang_pad.any(dim=1, keepdim=True).float()
        elif query == "text":
            rows, row_weight = lang_rows, lang_pad.float()
        elif query == "all":
            rows = torch.arange(length, device=prefix.pad.device).expand(batch, -1)
            row_weight = prefix.pad.float()
        else:
            raise ValueError(
                f"attention query {query!r} is not valid; use 'last_text', 'text', 'all' or a tensor."
            )
        probs = self._attention_rows(layer, rec, rows)  # [B, Q, L]
        pooled = (probs * row_weight[..., None]).sum(1) / row_weight.sum(1, keepdim=True).clamp(min=1e-12)
        return rec.layout.scatter(pooled[:, : prefix.num_visual], self.prefix.num_visual)

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

    def _attention_rows(self, layer_idx: int, rec: _LayerInput, rows: Tensor) -> Tensor:
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


class ExpertAttentionCapture:
    """Accumulates the action queries' attention onto the visual prefix keys, from the eager attention
    weights the expert's `self_attn` modules already compute (forward hooks, no recomputation).

    Use as a context manager around one denoising step; `result()` averages over the captured steps.
    """

    def __init__(self, model: PaliGemmaPruning, kv: PrefixKV, layers: list[int], num_visual: int):
        self.model, self.kv, self.layers, self.num_visual = model, kv, layers, num_visual
        self.total: Tensor | None = None  # [B, len(layers), M]
        self.steps = 0
        self._handles = []

    def __enter__(self) -> ExpertAttentionCapture:
        expert_layers = self.model.expert_model.layers
        for slot, layer_idx in enumerate(self.layers):
            hook = self._hook(slot, layer_idx)
            self._handles.append(expert_layers[layer_idx].self_attn.register_forward_hook(hook))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.steps += 1

    def _hook(self, slot: int, layer_idx: int):
        chunk = self.model.config.chunk_size

        def record(module, args, output):
            with self.model.strategy_clock.section(output[0].device):
                accumulate(output[1])

        def accumulate(weights: Tensor) -> None:  # [B, H, S, L_l + S]
            if weights is None:
                raise RuntimeError(
                    "expert attention weights are missing: the expert must run eager attention."
                )
            layout = self.kv.layouts[layer_idx]
            per_column = weights[:, :, -chunk:, : layout.num_visual].float().mean(dim=(1, 2))
            values = layout.scatter(per_column, self.num_visual)
            if self.total is None:
                self.total = values.new_zeros(values.shape[0], len(self.layers), self.num_visual)
            self.total[:, slot] += values

        return record

    def result(self) -> Tensor | None:
        return None if self.total is None else self.total / max(self.steps, 1)
