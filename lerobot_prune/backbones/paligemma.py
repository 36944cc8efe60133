"""π0 adapter: `PI0Pytorch` with visual-token pruning in its inference path.

Class map:
    PrunedPI0Pytorch  subclass of LeRobot's `PI0Pytorch`; same parameters and state-dict keys.
    Prefix            the prefix sequence (embeddings, masks, positions) and where its visual tokens are.
    PrefixKV          per-layer prefix keys/values and the key mask the action expert uses at each layer.
    PaliGemmaSignals  the signals strategies ask for, computed from the layer's own projections.

Modifications to the upstream inference path (only when the strategy can remove a token; otherwise
`PI0Pytorch.sample_actions` runs untouched):
    * the prefix runs through our own layer loop so a strategy can act before layer K (in-LLM) or
      before the VLM (pre-LLM), by dropping tokens (gather) or masking their keys;
    * the action expert runs through our own layer loop with a per-layer prefix key mask, because the
      KV cache of layers >= K holds only the kept tokens. It reads the prefix cache without copying it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import torch
from lerobot.policies.common.flow_matching import euler_integrate
from lerobot.policies.common.vla_utils import make_att_2d_masks, prepare_attention_masks_4d
from lerobot.policies.pi0 import modeling_pi0
from lerobot.policies.pi0.modeling_pi0 import PI0Pytorch
from torch import Tensor
from transformers.models.gemma.modeling_gemma import repeat_kv, rotate_half

from ..metrics import CallTrace, LayerDims
from ..selection import TokenSelection
from ..strategies.base import AttentionQuery, PruningView, SignalSource, TokenPruner
from .arch import backbone_sizes

logger = logging.getLogger(__name__)


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
    """

    def __init__(self, depth: int):
        self.keys: list[Tensor | None] = [None] * depth
        self.values: list[Tensor | None] = [None] * depth
        self.key_masks: list[Tensor | None] = [None] * depth  # [B, L_l] bool per layer
        self.suffix_offset: Tensor | None = None  # [B] first suffix position
        self.reading = False

    def update(self, key: Tensor, value: Tensor, layer_idx: int, *args, **kwargs) -> tuple[Tensor, Tensor]:
        if not self.reading:
            self.keys[layer_idx], self.values[layer_idx] = key, value
            return key, value
        return (
            torch.cat([self.keys[layer_idx], key], dim=2),
            torch.cat([self.values[layer_idx], value], dim=2),
        )


class PaliGemmaSignals(SignalSource):
    """Signals at the pruning layer K, computed from layer K-1's cached keys and its input rows."""

    def __init__(self, model: PrunedPI0Pytorch, prefix: Prefix, layer_input: Tensor | None, kv: PrefixKV,
                 layer: int, mask_2d: Tensor | None):  # fmt: skip
        self.model, self.prefix, self.layer_input, self.kv = model, prefix, layer_input, kv
        self.layer, self.mask_2d = layer, mask_2d

    def visual_embeds(self) -> Tensor:
        return self.prefix.embs[:, : self.prefix.num_visual]

    def attention_to_visual(self, query: AttentionQuery) -> Tensor:
        if self.layer_input is None:
            raise RuntimeError("attention signals exist only for in-LLM strategies (layer K >= 1).")
        prefix, source = self.prefix, self.layer - 1
        batch, length = prefix.pad.shape
        lang_pad = prefix.pad[:, prefix.num_visual :]
        if query != "all" and not bool(lang_pad.any(dim=1).all()):
            raise ValueError(
                f"attention query {query!r} needs a language token in every sample, but a prompt is empty; "
                "check that the batch carries a task string (or use query='all')."
            )
        if query == "last_text":
            last = (lang_pad.long() * torch.arange(1, lang_pad.shape[1] + 1, device=lang_pad.device)).argmax(1)
            rows = (prefix.num_visual + last)[:, None]
            row_weight = lang_pad.any(dim=1, keepdim=True).float()
        elif query == "text":
            rows = torch.arange(prefix.num_visual, length, device=prefix.pad.device).expand(batch, -1)
            row_weight = lang_pad.float()
        else:
            rows = torch.arange(length, device=prefix.pad.device).expand(batch, -1)
            row_weight = prefix.pad.float()
        probs = self._attention_rows(source, rows)  # [B, Q, L]
        pooled = (probs * row_weight[..., None]).sum(1) / row_weight.sum(1, keepdim=True).clamp(min=1)
        return pooled[:, : prefix.num_visual]

    def _attention_rows(self, layer_idx: int, rows: Tensor) -> Tensor:
        """Head-mean softmax attention `[B, Q, L]` of prefix rows `rows` (`[B, Q]`) at `layer_idx`."""
        lm = self.model.language_model
        attn = lm.layers[layer_idx].self_attn
        hidden = self.layer_input.gather(1, rows[..., None].expand(-1, -1, self.layer_input.shape[-1]))
        normed, _ = lm.layers[layer_idx].input_layernorm(hidden)
        batch, num_rows = rows.shape
        q = attn.q_proj(normed).view(batch, num_rows, -1, attn.head_dim).transpose(1, 2).float()
        cos, sin = lm.rotary_emb(q, self.prefix.pos.gather(1, rows))
        q = q * cos[:, None] + rotate_half(q) * sin[:, None]
        keys = repeat_kv(self.kv.keys[layer_idx], attn.num_key_value_groups).float()
        logits = torch.matmul(q, keys.transpose(2, 3)) * attn.scaling
        allowed = self.mask_2d.gather(1, rows[..., None].expand(-1, -1, self.mask_2d.shape[-1]))
        logits = logits.masked_fill(~allowed[:, None], torch.finfo(logits.dtype).min)
        return torch.softmax(logits, dim=-1).mean(dim=1)


class PrunedPI0Pytorch(PI0Pytorch):
    """LeRobot's π0 model whose `sample_actions` applies a `TokenPruner` (methods_spec §1.3-1.4)."""

    modeling_module = modeling_pi0

    def __init__(self, config, rtc_processor=None, pruner: TokenPruner | None = None):
        with backbone_sizes(self.modeling_module, getattr(config, "arch_override", None)):
            super().__init__(config, rtc_processor=rtc_processor)
        self.pruner = pruner
        self.last_trace: CallTrace | None = None
        self.call_index = 0
        self.fallback_count = 0

    @property
    def language_model(self):
        return self.paligemma_with_expert.paligemma.model.language_model

    @property
    def expert_model(self):
        return self.paligemma_with_expert.gemma_expert.model

    @property
    def tokens_per_camera(self) -> int:
        vision = self.paligemma_with_expert.paligemma.config.vision_config
        return (vision.image_size // vision.patch_size) ** 2

    @property
    def layer_dims(self) -> tuple[LayerDims, LayerDims]:
        """(VLM, expert) decoder-layer sizes, for FLOP accounting."""
        return LayerDims.from_hf(self.language_model.config), LayerDims.from_hf(self.expert_model.config)

    def reset_pruning(self) -> None:
        self.call_index = 0
        if self.pruner is not None:
            self.pruner.reset()

    @torch.no_grad()
    def sample_actions(self, images, img_masks, lang_tokens, lang_masks, state, noise=None, num_steps=None,
                       **kwargs) -> Tensor:  # fmt: skip
        """Same contract as `PI0Pytorch.sample_actions`; returns `[B, chunk_size, max_action_dim]`."""
        pruner = self.pruner
        if pruner is None or pruner.is_noop():
            self.last_trace = self._full_vision_trace(img_masks, lang_masks, num_steps)
            self.call_index += 1
            return super().sample_actions(
                images, img_masks, lang_tokens, lang_masks, state, noise=noise, num_steps=num_steps, **kwargs
            )
        num_steps = num_steps or self.config.num_inference_steps
        if noise is None:
            shape = (state.shape[0], self.config.chunk_size, self.config.max_action_dim)
            noise = self.sample_noise(shape, state.device)
        kv = self.prefill(images, img_masks, lang_tokens, lang_masks, pruner)
        self.last_trace = replace(self.last_trace, num_steps=num_steps)
        self.call_index += 1
        kv.reading = True
        actions = euler_integrate(
            lambda x_t, timestep: self.denoise_with_prefix(state, kv, x_t, timestep),
            noise,
            num_steps,
            rtc_processor=self.rtc_processor,
            rtc_enabled=self._rtc_enabled(),
            inference_delay=kwargs.get("inference_delay"),
            prev_chunk_left_over=kwargs.get("prev_chunk_left_over"),
            execution_horizon=kwargs.get("execution_horizon"),
        )
        view, selection = self._pending_observation
        if view is not None:
            pruner.observe(view, selection)
        return actions

    def embed_full_prefix(self, images, img_masks, lang_tokens, lang_masks) -> Prefix:
        embs, pad, att = self.embed_prefix(images, img_masks, lang_tokens, lang_masks)
        num_visual = len(images) * self.tokens_per_camera
        camera_ids = torch.arange(len(images), device=pad.device).repeat_interleave(self.tokens_per_camera)
        return Prefix(embs, pad, att, torch.cumsum(pad, dim=1) - 1, num_visual, camera_ids)

    def prefill(self, images, img_masks, lang_tokens, lang_masks, pruner: TokenPruner) -> PrefixKV:
        """Runs the VLM over the prefix, applying `pruner`; returns the per-layer prefix cache.

        The strategy decides before layer K (K=0: before the VLM, on embeddings). In "drop" mode layers
        >= K run on the kept tokens only; in "mask" mode they run on the whole sequence with the pruned
        keys masked. Kept tokens keep their positions unless a pre-LLM strategy renumbers them.
        """
        prefix = self.embed_full_prefix(images, img_masks, lang_tokens, lang_masks)
        num_cameras = len(images)
        valid_per_camera = _count_per_camera(prefix.camera_ids, None, num_cameras, prefix.visual_valid)
        suffix_offset = prefix.pad.sum(dim=1)
        if pruner.config.compact:
            prefix = prefix.take_columns(prefix.pad.any(dim=0).nonzero().squeeze(1))
        layers = self.language_model.layers
        kv = PrefixKV(len(layers))
        K = pruner.prune_layer
        selection, view, fell_back = None, None, False
        mask_2d = make_att_2d_masks(prefix.pad, prefix.att)
        key_mask = prefix.pad
        hidden = prefix.embs
        if layers[0].self_attn.q_proj.weight.dtype == torch.bfloat16:
            hidden = hidden.to(torch.bfloat16)
        attention_mask = prepare_attention_masks_4d(mask_2d, dtype=hidden.dtype)
        position_embeddings = self.language_model.rotary_emb(hidden, prefix.pos)
        layer_lengths, previous_input = [], None
        for layer_idx, layer in enumerate(layers):
            if layer_idx == K:
                view = PruningView(
                    visual_valid=prefix.visual_valid,
                    camera_ids=prefix.camera_ids,
                    num_cameras=num_cameras,
                    call_index=self.call_index,
                    signals=PaliGemmaSignals(self, prefix, previous_input, kv, K, mask_2d),
                )
                selection, fell_back = self._run_strategy(pruner, view)
                if selection is not None:
                    kept_per_camera = _count_per_camera(prefix.camera_ids, selection, num_cameras)
                    if pruner.mode == "drop":
                        prefix = replace(prefix, embs=hidden).keep(selection)
                        hidden = prefix.embs
                        if K == 0 and not pruner.preserve_positions:
                            prefix.pos = torch.cumsum(prefix.pad, dim=1) - 1
                            suffix_offset = prefix.pad.sum(dim=1)
                        mask_2d = make_att_2d_masks(prefix.pad, prefix.att)
                        key_mask = prefix.pad
                    else:
                        key_mask = prefix.key_mask(selection)
                        mask_2d = mask_2d & key_mask[:, None, :]
                    attention_mask = prepare_attention_masks_4d(mask_2d, dtype=hidden.dtype)
                    position_embeddings = self.language_model.rotary_emb(hidden, prefix.pos)
            kv.key_masks[layer_idx] = key_mask
            layer_lengths.append(hidden.shape[1])
            previous_input = hidden if layer_idx == K - 1 else None
            hidden = layer(
                hidden,
                attention_mask=attention_mask,
                position_ids=prefix.pos,
                past_key_values=kv,
                use_cache=True,
                position_embeddings=position_embeddings,
            )
        kv.suffix_offset = suffix_offset
        if selection is None:
            kept_per_camera = valid_per_camera
        self._pending_observation = (view, selection)
        self.last_trace = CallTrace(
            kept_per_camera=kept_per_camera.cpu(),
            valid_per_camera=valid_per_camera.cpu(),
            prefix_lengths=layer_lengths,
            full_length=num_cameras * self.tokens_per_camera + lang_masks.shape[1],
            suffix_length=self.config.chunk_size + 1,
            num_steps=self.config.num_inference_steps,
            fallback=fell_back,
        )
        return kv

    def _run_strategy(self, pruner: TokenPruner, view: PruningView) -> tuple[TokenSelection | None, bool]:
        """Returns the strategy's selection and whether it failed and fell back to full vision."""
        try:
            return pruner.select(view), False
        except Exception:
            if pruner.config.fallback == "raise":
                raise
            self.fallback_count += 1
            logger.warning("Strategy %r failed; this call runs with full vision.", pruner.config.type,
                           exc_info=True)  # fmt: skip
            return None, True

    def denoise_with_prefix(self, state, kv: PrefixKV, x_t: Tensor, timestep: Tensor) -> Tensor:
        """One Euler velocity `[B, chunk, max_action_dim]`, attending to each layer's prefix keys."""
        suffix_embs, suffix_pad, suffix_att, adarms_cond = self.embed_suffix(state, x_t, timestep)
        batch, suffix_len = suffix_pad.shape
        suffix_2d = make_att_2d_masks(suffix_pad, suffix_att)
        position_ids = kv.suffix_offset[:, None] + torch.cumsum(suffix_pad, dim=1) - 1
        expert = self.expert_model
        hidden = suffix_embs
        if expert.layers[0].self_attn.q_proj.weight.dtype == torch.bfloat16:
            hidden = hidden.to(torch.bfloat16)
        masks: dict[int, Tensor] = {}
        for key_mask in kv.key_masks:
            if id(key_mask) not in masks:
                prefix_2d = key_mask[:, None, :].expand(batch, suffix_len, key_mask.shape[1])
                masks[id(key_mask)] = prepare_attention_masks_4d(torch.cat([prefix_2d, suffix_2d], dim=2))
        position_embeddings = expert.rotary_emb(hidden, position_ids)
        for layer_idx, layer in enumerate(expert.layers):
            hidden = layer(
                hidden,
                attention_mask=masks[id(kv.key_masks[layer_idx])],
                position_ids=position_ids,
                past_key_values=kv,
                use_cache=False,
                position_embeddings=position_embeddings,
                adarms_cond=adarms_cond,
            )
        hidden, _ = expert.norm(hidden, adarms_cond)
        return self.action_out_proj(hidden[:, -self.config.chunk_size :].to(torch.float32))

    def _full_vision_trace(self, img_masks, lang_masks, num_steps) -> CallTrace:
        valid = _count_per_camera(
            torch.arange(len(img_masks), device=lang_masks.device).repeat_interleave(self.tokens_per_camera),
            None, len(img_masks), img_masks_to_valid(img_masks, self.tokens_per_camera),
        ).cpu()  # fmt: skip
        length = len(img_masks) * self.tokens_per_camera + lang_masks.shape[1]
        return CallTrace(
            kept_per_camera=valid,
            valid_per_camera=valid,
            prefix_lengths=[length] * len(self.language_model.layers),
            full_length=length,
            suffix_length=self.config.chunk_size + 1,
            num_steps=num_steps or self.config.num_inference_steps,
            fallback=False,
        )


def img_masks_to_valid(img_masks: list[Tensor], tokens_per_camera: int) -> Tensor:
    """`[B, C * tokens_per_camera]` bool from per-camera presence masks (`C` tensors of `[B]`)."""
    return torch.stack(img_masks, dim=1).repeat_interleave(tokens_per_camera, dim=1)


def _count_per_camera(camera_ids: Tensor, selection: TokenSelection | None, num_cameras: int,
                      valid: Tensor | None = None) -> Tensor:  # fmt: skip
    """`[B, C]` long: kept (or, without a selection, valid) visual tokens per camera."""
    if selection is not None:
        ids, weights = camera_ids[selection.keep_idx], selection.valid.long()
    else:
        ids, weights = camera_ids.expand_as(valid), valid.long()
    counts = torch.zeros(weights.shape[0], num_cameras, dtype=torch.long, device=weights.device)
    return counts.scatter_add(1, ids, weights)
