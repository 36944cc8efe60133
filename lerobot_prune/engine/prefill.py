"""The VLM prefill with a strategy applied before layer K, written once for every family.

PrefillLoop  mixin of `PruningEngine`: runs the prefix through the VLM layers, lets the strategy decide
             before layer K, applies its selection (`cut_prefix`) and fills the per-layer cache, key masks,
             layouts and lengths the action expert and the trace read. The family supplies one layer call
             (see "Family hooks").
cut_prefix   applies a selection at the layer a strategy decided at (drop or mask).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from lerobot.policies.common.vla_utils import make_att_2d_masks
from torch import Tensor

from ..selection import TokenSelection
from ..strategies.base import PruningView, TokenPruner
from .prefix import Prefix, PrefixKV, VisualLayout


class PrefillLoop:
    """The prefill of the pruned path.

    Family hooks: `_prefill_hidden` (optional), `_prefill_context` (optional) and `_run_vlm_layer`; the
    engine supplies `vlm_depth`, `_run_strategy` and `renumber_positions`.
    """

    def _prefill_hidden(self, prefix: Prefix) -> Tensor:
        """`[B, L, D]` input of the first VLM layer (e.g. cast to the layers' dtype)."""
        return prefix.embs

    def _prefill_context(self, prefix: Prefix, hidden: Tensor, mask_2d: Tensor):
        """What `_run_vlm_layer` needs besides the hidden states, built once per prefix shape (at the start
        and after a selection applies); here the `[B, L, L]` bool mask itself."""
        return mask_2d

    def _run_vlm_layer(self, layer_idx: int, hidden: Tensor, prefix: Prefix, context, kv: PrefixKV) -> Tensor:
        """Runs VLM decoder layer `layer_idx` on `hidden` `[B, L, D]`, storing its prefix keys/values in `kv`;
        returns the layer's output `[B, L, D]`."""
        raise NotImplementedError

    def prefill(self, prefix: Prefix, suffix_offset: Tensor, view: PruningView, pruner: TokenPruner,
                forced: TokenSelection | None = None,
                training: bool = False) -> tuple[PrefixKV, TokenSelection | None, bool]:  # fmt: skip
        """Runs the VLM over the prefix, applying `pruner`; returns (cache, selection, fell back).

        The strategy decides before layer K (K=0: before the VLM, on embeddings). In "drop" mode layers
        >= K run on the kept tokens only; in "mask" mode they run on the whole sequence with the pruned
        keys masked. Kept tokens keep their positions unless a pre-LLM strategy renumbers them.
        `forced` applies a known selection before layer 0 (the second pass of a probing strategy).
        `training` returns as soon as `pruner.select_for_training` decided at layer K (the cache is then
        incomplete); the training forward applies the selection itself.
        """
        signals = view.signals
        kv = PrefixKV(self.vlm_depth)
        if forced is None:
            signals.kv = kv
        else:
            signals.wanted = set()  # signals keep describing the first pass
        if forced is not None:
            K = 0
        elif pruner.stage == "mask_all_layers":
            K = None
        else:
            K = pruner.prune_layer
        selection, fell_back = None, False
        layout = VisualLayout(prefix.num_visual)
        mask_2d = make_att_2d_masks(prefix.pad, prefix.att)
        key_mask = prefix.pad
        hidden = self._prefill_hidden(prefix)
        context = self._prefill_context(prefix, hidden, mask_2d)
        layer_lengths = []
        mask_owner = 0
        for layer_idx in range(self.vlm_depth):
            if layer_idx == K:
                if training:
                    return kv, pruner.select_for_training(view), False
                if forced is not None:
                    selection = forced
                else:
                    selection, fell_back = self._run_strategy(pruner, view)
                if selection is not None:
                    cut = cut_prefix(self, prefix, hidden, mask_2d, suffix_offset, selection, pruner, K == 0)
                    prefix, hidden, layout = cut.prefix, cut.hidden, cut.layout
                    mask_2d, key_mask, suffix_offset = cut.mask_2d, cut.key_mask, cut.suffix_offset
                    context = self._prefill_context(prefix, hidden, mask_2d)
                    mask_owner = layer_idx
            kv.key_masks[layer_idx] = key_mask
            kv.mask_owner[layer_idx] = mask_owner
            kv.layouts[layer_idx] = layout
            layer_lengths.append(hidden.shape[1])
            signals.record(layer_idx, hidden, prefix, mask_2d, layout)
            hidden = self._run_vlm_layer(layer_idx, hidden, prefix, context, kv)
        kv.suffix_offset = suffix_offset
        kv.layer_lengths = layer_lengths
        return kv, selection, fell_back


@dataclass
class Cut:
    """The prefix state after a selection was applied before a layer."""

    prefix: Prefix
    hidden: Tensor  # [B, L', D] input of the layer
    layout: VisualLayout
    mask_2d: Tensor  # [B, L', L'] bool
    key_mask: Tensor  # [B, L'] bool
    suffix_offset: Tensor  # [B]


def cut_prefix(model: PrefillLoop, prefix: Prefix, hidden: Tensor, mask_2d: Tensor, suffix_offset: Tensor,
               selection: TokenSelection, pruner: TokenPruner, first_layer: bool) -> Cut:  # fmt: skip
    """Applies `selection` before a layer: "drop" keeps the selected columns only (renumbering positions
    before layer 0 unless the strategy preserves them), "mask" hides the pruned keys."""
    if pruner.mode == "drop":
        prefix = replace(prefix, embs=hidden).keep(selection)
        layout = VisualLayout(prefix.num_visual, selection.keep_idx, selection.valid.float())
        if first_layer and not pruner.preserve_positions:
            prefix.pos = model.renumber_positions(prefix)
            suffix_offset = prefix.pad.sum(dim=1)
        key_mask = prefix.pad
        return Cut(prefix, prefix.embs, layout, make_att_2d_masks(prefix.pad, prefix.att), key_mask,
                   suffix_offset)  # fmt: skip
    key_mask = prefix.key_mask(selection)
    layout = VisualLayout(prefix.num_visual)
    return Cut(prefix, hidden, layout, mask_2d & key_mask[:, None, :], key_mask, suffix_offset)
