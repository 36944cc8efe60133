"""The action expert's attention onto the visual tokens, accumulated over denoising steps."""

from __future__ import annotations

from torch import Tensor

from .prefix import PrefixKV


class ExpertAttentionCapture:
    """Accumulates the action queries' attention onto the visual prefix keys at the requested VLM layer
    indices, from the attention probabilities the action expert already computes (no recomputation).

    `start()` / `stop()` bracket one denoising step: while started, the family's expert code hands each
    layer's probabilities to `offer` (`model.active_capture` is this capture). `result()` averages over the
    captured steps. Layers without an expert layer stay 0.
    """

    def __init__(self, model, kv: PrefixKV, layers: list[int], num_visual: int):
        self.model, self.kv, self.num_visual = model, kv, num_visual
        self.slots = {layer: slot for slot, layer in enumerate(layers)}
        self.num_layers = len(layers)
        self.total: Tensor | None = None  # [B, len(layers), M]
        self.steps = 0

    def start(self) -> None:
        self.model.active_capture = self

    def stop(self) -> None:
        self.model.active_capture = None
        self.steps += 1

    def offer(self, layer_idx: int, weights: Tensor | None) -> None:
        """`weights`: `[B, H, S, L_l (+ S)]` attention probabilities of the expert at VLM layer `layer_idx`."""
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
                self.total = values.new_zeros(values.shape[0], self.num_layers, self.num_visual)
            self.total[:, self.slots[layer_idx]] += values

    def result(self) -> Tensor | None:
        return None if self.total is None else self.total / max(self.steps, 1)
