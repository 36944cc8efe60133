"""π0 / π0.5 adapter: LeRobot's `PI0Pytorch` / `PI05Pytorch` with visual-token pruning at inference.

Class map:
    PaliGemmaPruning   the pruned inference path, shared by both models (a mixin over the upstream class).
    PrunedPI0Pytorch   `PI0Pytorch` + pruning; same parameters and state-dict keys.
    PrunedPI05Pytorch  `PI05Pytorch` + pruning; same parameters and state-dict keys.

Modifications to the upstream inference path (only when the strategy can remove a token; otherwise the
upstream `sample_actions` runs untouched):
    * the prefix runs through the engine's layer loop (`engine/prefill.py`, calling the upstream decoder
      layers) so a strategy can act before layer K (in-LLM) or before the VLM (pre-LLM), by dropping
      tokens (gather) or masking their keys;
    * the action expert runs through our own layer loop with a per-layer prefix key mask, because the
      KV cache of layers >= K holds only the kept tokens. It reads the prefix cache without copying it.

The two models differ only in the suffix: π0 embeds the state as one suffix token, π0.5 has the
discretised state in the language prompt (so it is never pruned) and conditions the expert on time
through adaRMS. `suffix_inputs` and `suffix_length` carry that difference.
"""

from __future__ import annotations

import logging

import torch
from lerobot.policies.common.vla_utils import make_att_2d_masks, prepare_attention_masks_4d
from lerobot.policies.pi0 import modeling_pi0
from lerobot.policies.pi0.modeling_pi0 import PI0Pytorch
from lerobot.policies.pi05 import modeling_pi05
from lerobot.policies.pi05.modeling_pi05 import PI05Pytorch
from torch import Tensor

from ...engine.capture import ExpertAttentionCapture
from ...engine.encoder import EncodedVision
from ...engine.prefix import Prefix, PrefixKV
from ...engine.pruning_engine import PruningEngine
from ...flops import LayerDims, VisionDims
from ...strategies.base import TokenPruner
from .arch import backbone_sizes
from .signals import PaliGemmaSignals, register_expert_hooks
from .tower import SiglipTower
from .training import PruningAwareTraining

logger = logging.getLogger(__name__)


class PaliGemmaPruning(PruningAwareTraining, PruningEngine):
    """The pruned inference (and pruning-aware training) path of π0 and π0.5 (methods_spec §1.3-1.4);
    mixed in before the upstream class."""

    modeling_module = modeling_pi0
    family = "pi0"

    def __init__(self, config, rtc_processor=None, pruner: TokenPruner | None = None):
        with backbone_sizes(self.modeling_module, getattr(config, "arch_override", None)):
            super().__init__(config, rtc_processor=rtc_processor)
        self._init_pruning(pruner)
        self.training_metrics = {}
        register_expert_hooks(self)

    def _expert_attention_hook(self, module, args, output) -> None:
        """Forward hook of the expert's attention modules (see `register_expert_hooks`)."""
        if self.active_capture is not None:
            self.active_capture.offer(module.layer_idx, output[1])

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
    def suffix_length(self) -> int:
        """Expert tokens per denoising step (π0: the state token and the action chunk)."""
        return self.config.chunk_size + 1

    def suffix_inputs(self, state: Tensor | None, x_t: Tensor, timestep: Tensor):
        """`embed_suffix` of the upstream model: (embs, pad, att, adarms_cond)."""
        return self.embed_suffix(state, x_t, timestep)

    @property
    def vision_dims(self) -> VisionDims:
        """SigLIP and projector sizes, for the tower's FLOP accounting."""
        vision = self.paligemma_with_expert.paligemma.config.vision_config
        return VisionDims(vision.hidden_size, vision.intermediate_size, vision.num_hidden_layers,
                          self.tokens_per_camera, vision.patch_size, self.language_model.config.hidden_size)  # fmt: skip

    @property
    def layer_dims(self) -> tuple[LayerDims, LayerDims]:
        """(VLM, expert) decoder-layer sizes, for FLOP accounting."""
        return LayerDims.from_hf(self.language_model.config), LayerDims.from_hf(self.expert_model.config)

    def _unpruned_sample(self, images, img_masks, lang_tokens, lang_masks, state, noise, num_steps, kwargs):
        raise NotImplementedError

    def _unpruned_forward(self, images, img_masks, lang_tokens, lang_masks, state, actions, noise, time):
        raise NotImplementedError

    @property
    def vlm_depth(self) -> int:
        return len(self.language_model.layers)

    @property
    def default_num_steps(self) -> int:
        return self.config.num_inference_steps

    def full_prefix_length(self, num_cameras: int, lang_masks: Tensor) -> int:
        return num_cameras * self.tokens_per_camera + lang_masks.shape[1]

    def _before_prefill(self) -> None:
        self.language_model.config._attn_implementation = "eager"  # noqa: SLF001  (as upstream)
        self.expert_model.config._attn_implementation = "eager"  # noqa: SLF001

    def make_signals(self, prefix: Prefix, default_layer: int | None) -> PaliGemmaSignals:
        return PaliGemmaSignals(self, prefix, default_layer)

    def expert_capture(self, kv: PrefixKV, layers: list[int], num_visual: int) -> ExpertAttentionCapture:
        return ExpertAttentionCapture(self, kv, layers, num_visual)

    def embed_for_pruning(self, images, img_masks, lang_tokens, lang_masks, pruner, state: Tensor | None = None,
                          vision: EncodedVision | None = None) -> tuple[Prefix, Tensor, Tensor]:  # fmt: skip
        """The prefix as the VLM's first layer sees it (compacted if asked), the suffix offset `[B]` and
        the original visual index of each visual column (`[M]`, or `[B, M]` when `vision` came from an
        encoder mode). `vision`: the visual tokens an encoder mode produced, instead of `embed_image`'s."""
        if vision is None:
            embs, pad, att = self.embed_prefix(images, img_masks, lang_tokens, lang_masks)
            per_camera = self.tokens_per_camera
            num_visual = len(images) * per_camera
            camera_ids = torch.arange(len(images), device=pad.device).repeat_interleave(per_camera)
            visual_index = torch.arange(num_visual, device=pad.device)
        else:
            lang, lang_pad, lang_att = self.embed_prefix([], [], lang_tokens, lang_masks)
            camera_ids, visual_index = vision.camera_ids, vision.visual_index
            num_visual = len(camera_ids)
            visual_pad = torch.stack(img_masks, dim=1)[:, camera_ids]
            embs = torch.cat([vision.tokens.to(images[0].dtype), lang], dim=1)
            pad = torch.cat([visual_pad, lang_pad], dim=1)
            att = torch.cat([lang_att.new_zeros(lang_att.shape[0], num_visual), lang_att], dim=1)
        prefix = Prefix(embs, pad, att, torch.cumsum(pad, dim=1) - 1, num_visual, camera_ids)
        suffix_offset = pad.sum(dim=1)
        if pruner.config.compact:
            cols = pad.any(dim=0).nonzero().squeeze(1)
            prefix = prefix.take_columns(cols)
            visual_index = visual_index[..., cols[: prefix.num_visual]]
        return prefix, suffix_offset, visual_index

    def vision_tower(self, dtype: torch.dtype | None) -> SiglipTower:
        return SiglipTower(self, dtype)

    def _prefill_hidden(self, prefix: Prefix) -> Tensor:
        if self.language_model.layers[0].self_attn.q_proj.weight.dtype == torch.bfloat16:
            return prefix.embs.to(torch.bfloat16)
        return prefix.embs

    def _prefill_context(self, prefix: Prefix, hidden: Tensor, mask_2d: Tensor) -> tuple[Tensor, tuple]:
        """(`[B, 1, L, L]` additive attention mask, RoPE (cos, sin)) of the upstream decoder layer."""
        attention_mask = prepare_attention_masks_4d(mask_2d, dtype=hidden.dtype)
        return attention_mask, self.language_model.rotary_emb(hidden, prefix.pos)

    def _run_vlm_layer(self, layer_idx: int, hidden: Tensor, prefix: Prefix, context, kv: PrefixKV) -> Tensor:
        """The upstream Gemma decoder layer; its attention stores the keys/values through `kv.update`."""
        attention_mask, position_embeddings = context
        return self.language_model.layers[layer_idx](
            hidden,
            attention_mask=attention_mask,
            position_ids=prefix.pos,
            past_key_values=kv,
            use_cache=True,
            position_embeddings=position_embeddings,
        )

    def denoise_with_prefix(self, state, kv: PrefixKV, x_t: Tensor, timestep: Tensor) -> Tensor:
        """One Euler velocity `[B, chunk, max_action_dim]`, attending to each layer's prefix keys."""
        suffix_embs, suffix_pad, suffix_att, adarms_cond = self.suffix_inputs(state, x_t, timestep)
        batch, suffix_len = suffix_pad.shape
        suffix_2d = make_att_2d_masks(suffix_pad, suffix_att)
        position_ids = kv.suffix_offset[:, None] + torch.cumsum(suffix_pad, dim=1) - 1
        expert = self.expert_model
        hidden = suffix_embs
        if expert.layers[0].self_attn.q_proj.weight.dtype == torch.bfloat16:
            hidden = hidden.to(torch.bfloat16)
        masks: dict[int, Tensor] = {}
        for owner in kv.mask_owner:
            if owner not in masks:
                key_mask = kv.key_masks[owner]
                prefix_2d = key_mask[:, None, :].expand(batch, suffix_len, key_mask.shape[1])
                masks[owner] = prepare_attention_masks_4d(torch.cat([prefix_2d, suffix_2d], dim=2))
        position_embeddings = expert.rotary_emb(hidden, position_ids)
        for layer_idx, layer in enumerate(expert.layers):
            hidden = layer(
                hidden,
                attention_mask=masks[kv.mask_owner[layer_idx]],
                position_ids=position_ids,
                past_key_values=kv,
                use_cache=False,
                position_embeddings=position_embeddings,
                adarms_cond=adarms_cond,
            )
        hidden, _ = expert.norm(hidden, adarms_cond)
        return self.action_out_proj(hidden[:, -self.config.chunk_size :].to(torch.float32))


class PrunedPI0Pytorch(PaliGemmaPruning, PI0Pytorch):
    """LeRobot's π0 model whose `sample_actions` applies a `TokenPruner`."""

    def sample_actions(self, images, img_masks, lang_tokens, lang_masks, state, noise=None, num_steps=None,
                       **kwargs) -> Tensor:  # fmt: skip
        """Same contract as `PI0Pytorch.sample_actions`."""
        return self.pruned_sample_actions(images, img_masks, lang_tokens, lang_masks, state, noise, num_steps,
                                          **kwargs)  # fmt: skip

    def _unpruned_sample(self, images, img_masks, lang_tokens, lang_masks, state, noise, num_steps, kwargs):
        return PI0Pytorch.sample_actions(self, images, img_masks, lang_tokens, lang_masks, state, noise=noise,
                                         num_steps=num_steps, **kwargs)  # fmt: skip

    def forward(self, images, img_masks, lang_tokens, lang_masks, state, actions, noise, time) -> Tensor:
        """Same contract as `PI0Pytorch.forward`, with the strategy applied (`pruning.in_training`)."""
        return self.pruned_forward(images, img_masks, lang_tokens, lang_masks, state, actions, noise, time)

    def _unpruned_forward(self, images, img_masks, lang_tokens, lang_masks, state, actions, noise, time):
        return PI0Pytorch.forward(
            self, images, img_masks, lang_tokens, lang_masks, state, actions, noise, time
        )


class PrunedPI05Pytorch(PaliGemmaPruning, PI05Pytorch):
    """LeRobot's π0.5 model whose `sample_actions` applies a `TokenPruner`."""

    modeling_module = modeling_pi05
    family = "pi05"

    @property
    def suffix_length(self) -> int:
        return self.config.chunk_size

    def suffix_inputs(self, state: Tensor | None, x_t: Tensor, timestep: Tensor):
        return self.embed_suffix(x_t, timestep)

    def sample_actions(
        self, images, img_masks, tokens, masks, noise=None, num_steps=None, **kwargs
    ) -> Tensor:
        """Same contract as `PI05Pytorch.sample_actions`."""
        return self.pruned_sample_actions(images, img_masks, tokens, masks, None, noise, num_steps, **kwargs)

    def _unpruned_sample(self, images, img_masks, lang_tokens, lang_masks, state, noise, num_steps, kwargs):
        return PI05Pytorch.sample_actions(self, images, img_masks, lang_tokens, lang_masks, noise=noise,
                                          num_steps=num_steps, **kwargs)  # fmt: skip

    def forward(self, images, img_masks, tokens, masks, actions, noise, time) -> Tensor:
        """Same contract as `PI05Pytorch.forward`, with the strategy applied (`pruning.in_training`)."""
        return self.pruned_forward(images, img_masks, tokens, masks, None, actions, noise, time)

    def _unpruned_forward(self, images, img_masks, lang_tokens, lang_masks, state, actions, noise, time):
        return PI05Pytorch.forward(self, images, img_masks, lang_tokens, lang_masks, actions, noise, time)
