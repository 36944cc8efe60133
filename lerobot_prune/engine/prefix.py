"""The prefix sequence and its per-layer cache, shared by the backbone adapters.

Prefix        the prefix sequence (embeddings, masks, positions) and where its visual tokens are.
PrefixKV      per-layer prefix keys/values and the key mask the action expert uses at each layer.
VisualLayout  where a layer's cached visual columns sit in the view's visual index space.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..selection import TokenSelection


@dataclass
class Prefix:
    """The prefix sequence at some point of the prefill.

    Attributes:
        embs: `[B, L, D]` hidden states (layer input).
        pad: `[B, L]` bool, real tokens.
        att: `[B, L]` bool, autoregressive block starts (all False for π0's bidirectional prefix).
        pos: `[B, L]` long, RoPE positions.
        num_visual: visual tokens occupy columns `[0, num_visual)`, language the rest.
        camera_ids: `[num_visual]` (or `[B, num_visual]` once rows differ) long, camera of each visual column.
    """

    embs: Tensor
    pad: Tensor
    att: Tensor
    pos: Tensor
    num_visual: int
    camera_ids: Tensor

    @property
    def visual_valid(self) -> Tensor:
        return self.pad[:, : self.num_visual]

    def take_columns(self, cols: Tensor) -> Prefix:
        """Keeps the columns `cols` (`[L']`, ascending, shared by the batch)."""
        num_visual = int((cols < self.num_visual).sum())
        return Prefix(
            embs=self.embs[:, cols],
            pad=self.pad[:, cols],
            att=self.att[:, cols],
            pos=self.pos[:, cols],
            num_visual=num_visual,
            camera_ids=self.camera_ids[cols[:num_visual]],
        )

    def keep(self, selection: TokenSelection) -> Prefix:
        """Physically keeps the selected visual tokens (per sample) and every language token."""
        batch, num_lang = self.pad.shape[0], self.pad.shape[1] - self.num_visual
        lang_cols = torch.arange(self.num_visual, self.pad.shape[1], device=self.pad.device)
        cols = torch.cat([selection.keep_idx, lang_cols.expand(batch, num_lang)], dim=1)
        slot_valid = torch.cat([selection.valid, selection.valid.new_ones(batch, num_lang)], dim=1)
        index = cols[..., None].expand(-1, -1, self.embs.shape[-1])
        return Prefix(
            embs=self.embs.gather(1, index),
            pad=self.pad.gather(1, cols) & slot_valid,
            att=self.att.gather(1, cols),
            pos=self.pos.gather(1, cols),
            num_visual=selection.keep_idx.shape[1],
            camera_ids=self.camera_ids[selection.keep_idx],
        )

    def key_mask(self, selection: TokenSelection | None) -> Tensor:
        """`[B, L]` keys visible to attention: real tokens, minus unselected visual tokens."""
        if selection is None:
            return self.pad
        keep = torch.ones_like(self.pad)
        keep[:, : self.num_visual] = selection.keep_mask(self.num_visual)
        return self.pad & keep


class PrefixKV:
    """Per-layer prefix keys/values, filled by the prefill and read by every denoising step.

    Passed to the attention modules as their `past_key_values`: during the prefill `update` records,
    during denoising it prepends the prefix to the suffix keys without touching the stored tensors.
    `layouts[l]` says where layer l's cached visual keys sit in the view's visual index space.
    """

    def __init__(self, depth: int):
        self.keys: list[Tensor | None] = [None] * depth
        self.values: list[Tensor | None] = [None] * depth
        self.key_masks: list[Tensor | None] = [None] * depth  # [B, L_l] bool per layer
        # First layer whose key mask each layer shares (layers' masks change only where a selection applies),
        # so the expert builds each distinct mask once without keying on tensor identity.
        self.mask_owner: list[int] = list(range(depth))
        self.layouts: list[VisualLayout | None] = [None] * depth
        self.suffix_offset: Tensor | None = None  # [B] first suffix position
        self.layer_lengths: list[int] = []
        self.reading = False

    def update(self, key: Tensor, value: Tensor, layer_idx: int, *args, **kwargs) -> tuple[Tensor, Tensor]:
        if not self.reading:
            self.keys[layer_idx], self.values[layer_idx] = key, value
            return key, value
        return (
            torch.cat([self.keys[layer_idx], key], dim=2),
            torch.cat([self.values[layer_idx], value], dim=2),
        )


@dataclass(frozen=True)
class VisualLayout:
    """Visual columns `[0, num_visual)` of a layer's sequence and their view-space indices.

    Attributes:
        num_visual: visual columns in this layer's sequence.
        index: `[B, num_visual]` view-space visual index of each column, or None for the identity.
        valid: `[B, num_visual]` bool, real columns (None with the identity).
    """

    num_visual: int
    index: Tensor | None = None
    valid: Tensor | None = None

    def scatter(self, values: Tensor, num_visual: int) -> Tensor:
        """`[B, num_visual]` from per-column `values` (`[B, self.num_visual]`); absent tokens get 0."""
        if self.index is None:
            return values
        out = values.new_zeros(values.shape[0], num_visual)
        return out.scatter_add(1, self.index, values * self.valid)


def img_masks_to_valid(img_masks: list[Tensor], tokens_per_camera: int) -> Tensor:
    """`[B, C * tokens_per_camera]` bool from per-camera presence masks (`C` tensors of `[B]`)."""
    return torch.stack(img_masks, dim=1).repeat_interleave(tokens_per_camera, dim=1)


def count_per_camera(camera_ids: Tensor, selection: TokenSelection | None, num_cameras: int,
                      valid: Tensor | None = None) -> Tensor:  # fmt: skip
    """`[B, C]` long: kept (or, without a selection, valid) visual tokens per camera."""
    if selection is not None:
        ids, weights = camera_ids[selection.keep_idx], selection.valid.long()
    else:
        ids, weights = camera_ids.expand_as(valid), valid.long()
    counts = torch.zeros(weights.shape[0], num_cameras, dtype=torch.long, device=weights.device)
    return counts.scatter_add(1, ids, weights)
