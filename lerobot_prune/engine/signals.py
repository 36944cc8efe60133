"""What every family's signals share: which VLM layers to record, and attention to the visual tokens
pooled over the query rows a strategy asks for (see `strategies.base.SignalSource`)."""

from __future__ import annotations

import abc
from dataclasses import dataclass

import torch
from torch import Tensor

from ..strategies.base import AttentionQuery, SignalSource
from .prefix import Prefix, PrefixKV, VisualLayout


@dataclass(frozen=True)
class LayerInput:
    hidden: Tensor  # [B, L_l, D]
    prefix: Prefix
    mask_2d: Tensor  # [B, L_l, L_l] bool
    layout: VisualLayout


class PrefixSignals(SignalSource):
    """Signals of one call, computed from the layers' own projections in float32.

    Attention rows are recomputed from a layer's recorded input and cached keys, so only the rows a
    strategy asks for are computed. Layer `K-1` is always recorded; others on request. A family
    subclasses this with its layers' math: `_attention_rows` and `text_visual_logits`, and
    `language_span` when its language tokens do not directly follow the visual ones. `model` is the
    family's pruning model (it has `language_model.layers`).
    """

    def __init__(self, model, prefix: Prefix, default_layer: int | None):
        self.model, self.prefix, self.default_layer = model, prefix, default_layer
        self.kv: PrefixKV | None = None
        self.wanted: set[int] = set() if default_layer is None else {default_layer}
        self.records: dict[int, LayerInput] = {}
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
            self.records[layer_idx] = LayerInput(hidden, prefix, mask_2d, layout)

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

    @abc.abstractmethod
    def _attention_rows(self, layer_idx: int, rec: LayerInput, rows: Tensor) -> Tensor:
        """Head-mean softmax attention `[B, Q, L]` of prefix rows `rows` (`[B, Q]`) at `layer_idx`."""
