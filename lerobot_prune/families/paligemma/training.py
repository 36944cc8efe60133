"""Pruning-aware fine-tuning: the π0 / π0.5 flow-matching loss with the strategy applied (`pruning.in_training`).

`PruningAwareTraining.pruned_forward` has the upstream `forward`'s contract (per-element loss
`[B, chunk, max_action_dim]` for given noise and time). Per training batch:
    1. without gradients, the prefix runs up to layer K-1 and `TokenPruner.select_for_training` picks the
       kept visual tokens from the same signals as at inference (no per-episode state is read or written);
    2. the joint prefix + suffix pass runs with gradients through our own loop over LeRobot's per-layer
       function (`compute_layer_complete`), so that each layer gets its own attention mask: pre-LLM
       strategies gather the kept columns before the VLM (positions renumbered unless
       `preserve_positions`), in-LLM strategies hide the pruned visual keys from every query (prefix and
       action expert) in layers >= K, which equals dropping them as the inference KV cache does.
With nothing to prune (strategy `none`, keep_ratio 1, `in_training=false`) upstream's forward runs untouched.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F  # noqa: N812
from lerobot.policies.common.vla_utils import make_att_2d_masks, prepare_attention_masks_4d
from torch import Tensor

from ...engine.prefix import Prefix
from ...flops import LayerDims, layer_flops
from ...selection import TokenSelection


class PruningAwareTraining:
    """The training forward of the PaliGemma adapters (mixed in with `PaliGemmaPruning`).

    Attributes:
        training_metrics: `pruning/*` floats of the last training forward (kept visual tokens per sample,
            keep fraction, FLOP ratio of the equivalent pruned forward, the strategy's training diagnostics).
    """

    training_metrics: dict[str, float]

    def prunes_in_training(self) -> bool:
        pruner = self.pruner
        return pruner is not None and pruner.config.in_training and not pruner.is_noop()

    def check_training(self) -> None:
        """Raises if the strategy cannot select in a training forward (call before any work)."""
        if self.prunes_in_training():
            self.pruner.check_training()

    def pruned_forward(self, images, img_masks, lang_tokens, lang_masks, state: Tensor | None, actions: Tensor,
                       noise: Tensor, time: Tensor) -> Tensor:  # fmt: skip
        """Training loss `[B, chunk, max_action_dim]` (see the module docstring); `state` is None for π0.5."""
        if not self.prunes_in_training():
            valid = torch.stack(img_masks, dim=1).sum(1) * self.tokens_per_camera
            length = len(images) * self.tokens_per_camera + lang_masks.shape[1]
            self.training_metrics = self._metrics(valid, valid, [length] * self.depth, length, {})
            return self._unpruned_forward(
                images, img_masks, lang_tokens, lang_masks, state, actions, noise, time
            )
        self.pruner.check_training()
        prefix, suffix_offset, visual_index = self.embed_for_pruning(
            images, img_masks, lang_tokens, lang_masks, self.pruner
        )
        prefix, suffix_offset, key_masks = self.apply_training_selection(
            prefix, suffix_offset, visual_index, len(images), lang_masks.shape[1]
        )
        t = time[:, None, None]
        x_t = t * noise + (1 - t) * actions
        velocity = self.flow_velocity(prefix, suffix_offset, key_masks, state, x_t, time)
        return F.mse_loss(noise - actions, velocity, reduction="none")

    def apply_training_selection(
        self, prefix: Prefix, suffix_offset: Tensor, visual_index: Tensor, num_cameras: int, lang_length: int
    ) -> tuple[Prefix, Tensor, list[Tensor]]:
        """Selects without gradients and applies the selection; sets `training_metrics`.

        Returns the prefix the VLM's first layer sees (kept columns only for a pre-LLM strategy), the
        `[B]` first suffix position and the per-layer `[B, L]` visible prefix keys.
        """
        pruner = self.pruner
        with torch.no_grad():
            view = self.make_view(prefix, visual_index, num_cameras, pruner)
            _, selection, _ = self.prefill(prefix, suffix_offset, view, pruner, training=True)
            diagnostics = dict(pruner.training_diagnostics)
        width, num_lang = prefix.pad.shape[1], prefix.pad.shape[1] - prefix.num_visual
        valid = prefix.visual_valid.sum(1)
        if selection is None:
            key_masks, kept, kept_width = [prefix.pad] * self.depth, valid, width
        else:
            kept, kept_width = selection.valid.sum(1), selection.keep_idx.shape[1] + num_lang
            if pruner.stage == "pre_llm":
                prefix, suffix_offset = drop_visual(prefix, selection, pruner.preserve_positions)
                key_masks = [prefix.pad] * self.depth
            else:
                key_masks = layer_key_masks(prefix, selection, pruner.prune_layer, self.depth)
        start = 0 if pruner.stage == "pre_llm" else pruner.prune_layer
        lengths = [width] * start + [kept_width] * (self.depth - start)
        full_length = num_cameras * self.tokens_per_camera + lang_length
        self.training_metrics = self._metrics(kept, valid, lengths, full_length, diagnostics)
        return prefix, suffix_offset, key_masks

    @property
    def depth(self) -> int:
        return len(self.language_model.layers)

    def flow_velocity(self, prefix: Prefix, suffix_offset: Tensor, key_masks: list[Tensor],
                      state: Tensor | None, x_t: Tensor, time: Tensor) -> Tensor:  # fmt: skip
        """Velocity `[B, chunk, max_action_dim]` of one joint prefix + suffix pass (with gradients).

        Args:
            prefix: the prefix the VLM's first layer sees (`embs` `[B, L, D]`).
            suffix_offset: `[B]` position of the first suffix token.
            key_masks: per VLM layer, `[B, L]` bool prefix keys visible to every query at that layer.
            state: `[B, max_state_dim]` (None for π0.5); x_t: `[B, chunk, max_action_dim]` noisy actions;
                time: `[B]`.
        """
        suffix_embs, suffix_pad, suffix_att, adarms_cond = self.suffix_inputs(state, x_t, time)
        prefix_embs = prefix.embs
        if self.language_model.layers[0].self_attn.q_proj.weight.dtype == torch.bfloat16:
            prefix_embs, suffix_embs = prefix_embs.to(torch.bfloat16), suffix_embs.to(torch.bfloat16)
        mask_2d = make_att_2d_masks(
            torch.cat([prefix.pad, suffix_pad], 1), torch.cat([prefix.att, suffix_att], 1)
        )
        suffix_keys = torch.ones_like(suffix_pad)
        masks: dict[int, Tensor] = {}
        for key_mask in key_masks:
            if id(key_mask) not in masks:
                visible = torch.cat([key_mask, suffix_keys], dim=1)
                masks[id(key_mask)] = prepare_attention_masks_4d(mask_2d & visible[:, None, :])
        position_ids = torch.cat(
            [prefix.pos, suffix_offset[:, None] + torch.cumsum(suffix_pad, dim=1) - 1], 1
        )
        hidden = [prefix_embs, suffix_embs]
        adarms = [None, adarms_cond]
        compute_layer = self.modeling_module.compute_layer_complete
        rotary_emb = self.language_model.rotary_emb
        checkpointing = self.gradient_checkpointing_enabled and self.training
        for layer_idx, layers in enumerate(
            zip(self.language_model.layers, self.expert_model.layers, strict=True)
        ):
            mask = masks[id(key_masks[layer_idx])]
            if checkpointing:
                hidden = torch.utils.checkpoint.checkpoint(
                    compute_layer, hidden, mask, position_ids, adarms, use_reentrant=False,
                    preserve_rng_state=False, layers=layers, rotary_emb=rotary_emb,
                )  # fmt: skip
            else:
                hidden = compute_layer(
                    hidden, mask, position_ids, adarms, layers=layers, rotary_emb=rotary_emb
                )
        suffix_out, _ = self.modeling_module.layernorm_forward(self.expert_model.norm, hidden[1], adarms_cond)
        return self.action_out_proj(suffix_out[:, -self.config.chunk_size :].to(torch.float32))

    def _metrics(self, kept: Tensor, valid: Tensor, lengths: list[int], full_length: int,
                 diagnostics: dict) -> dict[str, float]:  # fmt: skip
        """`pruning/*` floats; `kept`, `valid`: `[B]` visual tokens per sample; `lengths`: per VLM layer."""
        vlm, expert = self.layer_dims
        suffix = self.suffix_length
        metrics = {
            "pruning/kept_visual_tokens": float(kept.float().mean()),
            "pruning/keep_fraction": float((kept.float() / valid.clamp(min=1).float()).mean()),
            "pruning/flop_ratio": forward_flops(vlm, expert, lengths, suffix)
            / forward_flops(vlm, expert, [full_length] * len(lengths), suffix),
        }
        for name, value in diagnostics.items():
            if (number := _as_number(value)) is not None:
                metrics[f"pruning/{name}"] = number
        return metrics


def drop_visual(prefix: Prefix, selection: TokenSelection, preserve_positions: bool) -> tuple[Prefix, Tensor]:
    """Gathers the kept visual columns before the VLM, as the inference prefill does at K=0.

    Returns the shorter prefix and the `[B]` first suffix position (renumbered unless `preserve_positions`).
    """
    suffix_offset = prefix.pad.sum(dim=1)
    kept = prefix.keep(selection)
    if not preserve_positions:
        kept = replace(kept, pos=torch.cumsum(kept.pad, dim=1) - 1)
        suffix_offset = kept.pad.sum(dim=1)
    return kept, suffix_offset


def layer_key_masks(
    prefix: Prefix, selection: TokenSelection | None, prune_layer: int, depth: int
) -> list[Tensor]:
    """Per VLM layer, `[B, L]` visible prefix keys: real tokens before `prune_layer`, kept ones from it on."""
    pruned = prefix.key_mask(selection)
    return [prefix.pad] * prune_layer + [pruned] * (depth - prune_layer)


def forward_flops(vlm: LayerDims, expert: LayerDims, lengths: list[int], suffix_length: int) -> int:
    """FLOPs per sample of one joint pass: the prefix at `lengths[l]` tokens per layer plus the suffix."""
    prefix = sum(layer_flops(vlm, n, n) for n in lengths)
    return prefix + sum(layer_flops(expert, suffix_length, n + suffix_length) for n in lengths)


def _as_number(value) -> float | None:
    """A scalar for logging: numbers and bools as floats, tensors and lists by their mean; else None."""
    if isinstance(value, bool | int | float):
        return float(value)
    if isinstance(value, Tensor) and value.numel():
        return float(value.float().mean())
    if isinstance(value, list | tuple) and value and all(isinstance(v, bool | int | float) for v in value):
        return float(sum(value) / len(value))
    return None
