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
        # Whether every sample has a language token, when the engine read it at call entry (None: not read).
        self.every_prompt: bool | None = None

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
        if isinstance(query, str) and query != "all" and not self._every_prompt(lang_pad):
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

    def _every_prompt(self, lang_pad: Tensor) -> bool:
        """Whether no prompt is empty: the value read at call entry, else read now (one host sync)."""
        return self.every_prompt if self.every_prompt is not None else bool(lang_pad.any(dim=1).all())

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
    weights the expert's `self_attn` modules already compute (no recomputation).

    `start()` / `stop()` bracket one denoising step: while started, the model's expert-attention hooks
    (`register_expert_hooks`, installed once per model) hand each layer's weights to `offer`.
    `result()` averages over the captured steps.
    """

    def __init__(self, model: PaliGemmaPruning, kv: PrefixKV, layers: list[int], num_visual: int):
        self.model, self.kv, self.num_visual = model, kv, num_visual
        self.slots = {layer: slot for slot, layer in enumerate(layers)}
        self.total: Tensor | None = None  # [B, len(layers), M]
        self.steps = 0

    def start(self) -> None:
        self.model.active_capture = self

    def stop(self) -> None:
        self.model.active_capture = None
        self.steps += 1

    def offer(self, layer_idx: int, weights: Tensor | None) -> None:
        """`weights`: `[B, H, S, L_l + S]` eager attention probabilities of expert layer `layer_idx`."""
        if layer_idx not in self.slots:
            return
        if weights is None:
            raise RuntimeError("expert attention weights are missing: the expert must run eager attention.")
        with self.model.strategy_clock.section(weights.device):
            layout = self.kv.layouts[layer_idx]
            chunk = self.model.config.chunk_size
            per_column = weights[:, :, -chunk:, : layout.num_visual].float().mean(dim=(1, 2))
            values = layout.scatter(per_column, self.num_visual)
            if self.total is None:
                self.total = values.new_zeros(values.shape[0], len(self.slots), self.num_visual)
            self.total[:, self.slots[layer_idx]] += values

    def result(self) -> Tensor | None:
        return None if self.total is None else self.total / max(self.steps, 1)


def register_expert_hooks(model: PaliGemmaPruning) -> None:
    """Installs, once per model, forward hooks on the expert's attention modules that pass their attention
    weights to `model.active_capture` (when one is started). Permanent hooks keep hook registration out of
    the denoising loop, where torch.compile cannot trace it. The hook is a bound method, so a deep copy of
    the model hooks the copy."""
    model.active_capture = None
    for layer in model.expert_model.layers:
        layer.self_attn.register_forward_hook(model._expert_attention_hook)  # noqa: SLF001
