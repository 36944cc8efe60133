"""SmolVLA adapter: LeRobot's `VLAFlowMatching` with visual-token pruning at inference.

`PrunedVLAFlowMatching` has the upstream parameters and state-dict keys. When the strategy can remove a
token, the prefix runs through the engine's prefill loop with the decoder-layer call below, and the action
expert through the layer loop below (same math as upstream); otherwise the upstream `sample_actions` runs
untouched.

SmolVLA's prefix is, per camera, [<fake><global-img>] image tokens [<fake>] (the special tokens only with
`add_image_special_tokens`), then the language tokens, then ONE state token, then padding up to
`prefix_length`. Image, special and language tokens form one bidirectional block and the state token a
second one, so the adapter reorders the columns to [visual][special][language][state][padding] and keeps
every token's RoPE position: attention is unchanged and the shared `Prefix` (visual columns first) applies.
Only visual tokens are candidates; special, language and state tokens are never pruned.

The expert runs per VLM layer index (fewer expert layers skip indices, as upstream): self-attention
layers attend to [that layer's prefix cache; suffix], cross-attention layers project the layer's cached
VLM keys/values with the expert's own k/v projections. Both use that layer's prefix key mask, because
the cache of layers >= K holds only the kept tokens.
"""

from __future__ import annotations

import torch
from lerobot.policies.common.vla_utils import make_att_2d_masks
from lerobot.policies.smolvla.modeling_smolvla import VLAFlowMatching
from torch import Tensor

from ...engine.capture import ExpertAttentionCapture
from ...engine.encoder import EncodedVision
from ...engine.prefix import Prefix, PrefixKV
from ...engine.pruning_engine import PruningEngine
from ...flops import LayerDims, VisionDims
from ...strategies.base import TokenPruner
from .signals import SmolVLMSignals, attend, rope
from .tower import SmolVLMTower

SPECIAL_BEFORE, SPECIAL_AFTER = 2, 1  # <fake><global-img> before each image, <fake> after it


class PrunedVLAFlowMatching(PruningEngine, VLAFlowMatching):
    """LeRobot's SmolVLA model whose `sample_actions` applies a `TokenPruner`."""

    family = "smolvla"
    state_in_prefix = True  # SmolVLA embeds the state as a prefix token

    def __init__(self, config, rtc_processor=None, pruner: TokenPruner | None = None):
        super().__init__(config, rtc_processor=rtc_processor)
        self._init_pruning(pruner)
        self.training_metrics: dict[str, float] = {}
        self.active_capture: ExpertAttentionCapture | None = None
        self._parts = (0, 0)  # (special, language) columns of the current call's prefix

    @property
    def language_model(self):
        return self.vlm_with_expert.get_vlm_model().text_model

    @property
    def vlm_layers(self):
        return self.language_model.layers

    @property
    def expert_model(self):
        return self.vlm_with_expert.lm_expert

    @property
    def vlm_depth(self) -> int:
        return len(self.vlm_layers)

    @property
    def tokens_per_camera(self) -> int:
        """Image tokens per camera: SigLIP patches of the resized image, pixel-shuffled by `scale_factor`."""
        vlm = self.vlm_with_expert.config
        vision = vlm.vision_config
        height, width = self.config.resize_imgs_with_padding or (vision.image_size, vision.image_size)
        return (height // vision.patch_size) * (width // vision.patch_size) // vlm.scale_factor**2

    @property
    def special_per_camera(self) -> int:
        return SPECIAL_BEFORE + SPECIAL_AFTER if self.add_image_special_tokens else 0

    @property
    def suffix_length(self) -> int:
        return self.config.chunk_size

    @property
    def default_num_steps(self) -> int:
        return self.config.num_steps

    @property
    def vision_dims(self) -> VisionDims:
        """SigLIP and connector sizes, for the tower's FLOP accounting (a token is scale_factor² patches)."""
        vlm = self.vlm_with_expert.config
        vision, scale = vlm.vision_config, vlm.scale_factor
        return VisionDims(vision.hidden_size, vision.intermediate_size, vision.num_hidden_layers,
                          self.tokens_per_camera * scale**2, vision.patch_size,
                          self.language_model.config.hidden_size, scale**2)  # fmt: skip

    @property
    def layer_dims(self) -> tuple[LayerDims, LayerDims]:
        """(VLM, expert) decoder-layer sizes, for FLOP accounting (cross-attention layers are counted as
        self-attention layers over the same keys)."""
        return LayerDims.from_hf(self.language_model.config), LayerDims.from_hf(self.expert_model.config)

    def full_prefix_length(self, num_cameras: int, lang_masks: Tensor) -> int:
        length = num_cameras * (self.tokens_per_camera + self.special_per_camera) + lang_masks.shape[1] + 1
        return max(length, self.config.prefix_length)

    def sample_actions(
        self, images, img_masks, lang_tokens, lang_masks, state, noise=None, **kwargs
    ) -> Tensor:
        """Same contract as `VLAFlowMatching.sample_actions` (`config.num_steps` Euler steps)."""
        return self.pruned_sample_actions(images, img_masks, lang_tokens, lang_masks, state, noise, None,
                                          **kwargs)  # fmt: skip

    def check_training(self) -> None:
        """Refuses a training build or forward while the strategy would prune: SmolVLA's training forward is
        upstream's, unpruned, and training it silently unpruned would not be pruning-aware fine-tuning."""
        pruner = self.pruner
        if pruner is not None and pruner.config.in_training and not pruner.is_noop():
            raise ValueError(
                f"pruned_smolvla does not apply {pruner.config.type!r} in the training forward (pruned_pi0 and "
                "pruned_pi05 do); set --policy.pruning.in_training=false to fine-tune SmolVLA's unmodified loss "
                "and keep the strategy for inference."
            )

    def _unpruned_sample(self, images, img_masks, lang_tokens, lang_masks, state, noise, num_steps, kwargs):
        return VLAFlowMatching.sample_actions(self, images, img_masks, lang_tokens, lang_masks, state,
                                              noise=noise, **kwargs)  # fmt: skip

    def make_signals(self, prefix: Prefix, default_layer: int | None) -> SmolVLMSignals:
        return SmolVLMSignals(self, prefix, default_layer, *self._parts)

    def expert_capture(self, kv: PrefixKV, layers: list[int], num_visual: int) -> ExpertAttentionCapture:
        return ExpertAttentionCapture(self, kv, layers, num_visual)

    def renumber_positions(self, prefix: Prefix) -> Tensor:
        """Ranks of the kept real tokens in their original order (the columns are reordered)."""
        key = prefix.pos.masked_fill(~prefix.pad, torch.iinfo(prefix.pos.dtype).max)
        order = key.argsort(dim=1, stable=True)
        ranks = torch.cumsum(prefix.pad.gather(1, order), dim=1) - 1
        return torch.empty_like(ranks).scatter_(1, order, ranks)

    def vision_tower(self, dtype: torch.dtype | None) -> SmolVLMTower:
        return SmolVLMTower(self, dtype)

    def embed_for_pruning(self, images, img_masks, lang_tokens, lang_masks, pruner, state: Tensor | None = None,
                          vision: EncodedVision | None = None) -> tuple[Prefix, Tensor, Tensor]:  # fmt: skip
        """The reordered prefix `[visual][special][language][state][padding]` (compacted if asked), the
        suffix offset `[B]` and the original visual index of each visual column (`[M]`, or `[B, M]` when
        `vision` came from an encoder mode). `vision`: the visual tokens an encoder mode produced (the same
        count for every camera), placed where upstream's `embed_image` output goes."""
        if state is None:
            raise ValueError("SmolVLA's prefix needs the state (`state` of `sample_actions`), got None.")
        if vision is None:
            per_camera = self.tokens_per_camera
            embs, pad, att = self.embed_prefix(images, img_masks, lang_tokens, lang_masks, state=state)
        else:
            per_camera = vision.tokens.shape[1] // len(images)
            chunks = iter(vision.tokens.to(images[0].dtype).split(per_camera, dim=1))
            vlm = self.vlm_with_expert
            vlm.embed_image = lambda image: next(chunks)  # upstream calls it once per camera, in order
            try:
                embs, pad, att = self.embed_prefix(images, img_masks, lang_tokens, lang_masks, state=state)
            finally:
                del vlm.embed_image
        special = self.special_per_camera
        num_cameras, num_lang = len(images), lang_tokens.shape[1]
        expected = num_cameras * (per_camera + special) + num_lang + 1
        if pad.shape[1] != max(expected, self.config.prefix_length):
            raise ValueError(
                f"SmolVLA's prefix has {pad.shape[1]} tokens, expected {num_cameras} cameras x "
                f"({per_camera} image + {special} special) + {num_lang} language + 1 state = {expected}; "
                f"the images must be {self.config.resize_imgs_with_padding} (resize_imgs_with_padding)."
            )
        device = pad.device
        block = torch.arange(num_cameras, device=device)[:, None] * (per_camera + special)
        offset = SPECIAL_BEFORE if special else 0
        visual_cols = (block + offset + torch.arange(per_camera, device=device)).flatten()
        is_visual = torch.zeros(pad.shape[1], dtype=torch.bool, device=device)
        is_visual[visual_cols] = True
        # visual columns, then the others, each in ascending order (a stable sort needs no host sync)
        order = torch.argsort((~is_visual).to(torch.uint8), stable=True)
        pos = torch.cumsum(pad, dim=1) - 1
        num_visual = num_cameras * per_camera
        camera_ids = torch.arange(num_cameras, device=device).repeat_interleave(per_camera)
        prefix = Prefix(embs[:, order], pad[:, order], att[:, order], pos[:, order], num_visual, camera_ids)
        visual_index = torch.arange(num_visual, device=device) if vision is None else vision.visual_index
        lang_cols = torch.arange(num_lang, device=device)
        if pruner.config.compact:
            cols = prefix.pad.any(dim=0).nonzero().squeeze(1)
            prefix = prefix.take_columns(cols)
            visual_index = visual_index[..., cols[: prefix.num_visual]]
            lang_cols = lang_cols[lang_masks.any(dim=0)]
        self._parts = (num_cameras * special, len(lang_cols))
        return prefix, pad.sum(dim=1), visual_index

    def _run_vlm_layer(self, layer_idx: int, hidden: Tensor, prefix: Prefix, context: Tensor,
                       kv: PrefixKV) -> Tensor:  # fmt: skip
        """One VLM decoder layer over the prefix (`context`: the `[B, L, L]` bool mask); stores its post-RoPE
        keys and values `[B, L, Hkv, D]`."""
        layer = self.vlm_layers[layer_idx]
        attn = layer.self_attn
        normed = layer.input_layernorm(hidden).to(attn.q_proj.weight.dtype)
        shape = (*normed.shape[:2], -1, attn.head_dim)
        q = rope(attn.q_proj(normed).view(shape), prefix.pos)
        k = rope(attn.k_proj(normed).view(shape), prefix.pos)
        v = attn.v_proj(normed).view(shape)
        kv.keys[layer_idx], kv.values[layer_idx] = k, v
        out, _ = attend(q, k, v, context)
        return _residual_block(layer, hidden, out)

    def _is_self_attention(self, layer_idx: int) -> bool:
        every = self.vlm_with_expert.self_attn_every_n_layers
        return "cross" not in self.vlm_with_expert.attention_mode or (every > 0 and layer_idx % every == 0)

    def denoise_with_prefix(self, state, kv: PrefixKV, x_t: Tensor, timestep: Tensor) -> Tensor:
        """One Euler velocity `[B, chunk, max_action_dim]`, attending to each layer's prefix keys (the state
        is part of the prefix, so `state` is unused)."""
        suffix_embs, suffix_pad, suffix_att = self.embed_suffix(x_t, timestep)
        batch, suffix_len = suffix_pad.shape
        suffix_2d = make_att_2d_masks(suffix_pad, suffix_att)
        positions = kv.suffix_offset[:, None] + torch.cumsum(suffix_pad, dim=1) - 1
        cross_positions = positions - positions.min(dim=1, keepdim=True).values
        expert_layers = self.vlm_with_expert.get_model_layers([self.language_model, self.expert_model])[1]
        capture, hidden = self.active_capture, suffix_embs
        for layer_idx, layer in enumerate(expert_layers):
            if layer is None:
                continue
            attn = layer.self_attn
            normed = layer.input_layernorm(hidden).to(attn.q_proj.weight.dtype)
            q = attn.q_proj(normed).view(batch, suffix_len, -1, attn.head_dim)
            prefix_mask = kv.key_masks[layer_idx][:, None, :].expand(batch, suffix_len, -1)
            if self._is_self_attention(layer_idx):
                shape = (batch, suffix_len, -1, attn.head_dim)
                q = rope(q, positions)
                k = torch.cat([kv.keys[layer_idx], rope(attn.k_proj(normed).view(shape), positions)], dim=1)
                v = torch.cat([kv.values[layer_idx], attn.v_proj(normed).view(shape)], dim=1)
                mask = torch.cat([prefix_mask, suffix_2d], dim=2)
            else:
                q = rope(q, cross_positions)
                k, v = (self._project_prefix(proj, cached, attn.head_dim) for proj, cached in
                        ((attn.k_proj, kv.keys[layer_idx]), (attn.v_proj, kv.values[layer_idx])))  # fmt: skip
                mask = prefix_mask
            out, probs = attend(q, k, v, mask, want_probs=capture is not None)
            if capture is not None:
                capture.offer(layer_idx, probs)
            hidden = _residual_block(layer, hidden, out)
        hidden = self.expert_model.norm(hidden)
        return self.action_out_proj(hidden[:, -self.config.chunk_size :].to(torch.float32))

    @staticmethod
    def _project_prefix(proj, cached: Tensor, head_dim: int) -> Tensor:
        """The expert's k/v projection of a VLM layer's cached keys/values `[B, L, Hkv, D]`."""
        flat = cached.reshape(*cached.shape[:2], -1).to(proj.weight.dtype)
        return proj(flat).view(*cached.shape[:2], -1, head_dim)


def _residual_block(layer, hidden: Tensor, attn_out: Tensor) -> Tensor:
    """Output projection, residual, post-attention norm, MLP, residual (SmolVLA's decoder layer)."""
    out = layer.self_attn.o_proj(attn_out.to(layer.self_attn.o_proj.weight.dtype))
    out = out + hidden.to(out.dtype)
    return out + layer.mlp(layer.post_attention_layernorm(out))
