"""The backbone-independent part of the pruned inference path, shared by the π0/π0.5 and SmolVLA adapters.

PruningEngine  mixin: per-call flow (strategy, prefill, Euler loop, probe stage), fallback, TIES'
               all-layer attention columns; the call's record is `trace.CallRecorder`. The adapter
               supplies the prefix embedding, one VLM layer call (`prefill.PrefillLoop`), one denoising
               step and the expert-attention capture (see "Adapter hooks").
DenoiseRun     the velocity function of one call's Euler loop.
AllLayersProbe runs the prefix unpruned and records every layer's input.
"""

from __future__ import annotations

import logging

import torch
from lerobot.policies.common.flow_matching import euler_integrate
from torch import Tensor

from ..metrics import CallTrace
from ..profiling import StrategyClock
from ..selection import TokenSelection
from ..strategies.base import PruningView, TokenPruner
from ..strategies.none import NoPruningConfig
from .encoder import (
    CarryOver,
    EncodedVision,
    encode_carried,
    encode_full,
    encode_in_encoder,
    full_patch_counts,
    uses_tower,
)
from .prefill import PrefillLoop
from .prefix import Prefix, PrefixKV
from .trace import CallRecorder

logger = logging.getLogger(__name__)


class PruningEngine(PrefillLoop, CallRecorder):
    """Pruned `sample_actions` for an adapter mixed in before an upstream flow-matching model.

    Adapter hooks: `tokens_per_camera`, `vlm_depth`, `suffix_length`, `default_num_steps`,
    `full_prefix_length`, `embed_for_pruning`, `make_signals`, `_run_vlm_layer`, `denoise_with_prefix`,
    `expert_capture`, `_unpruned_sample`, `vision_tower` (for `pruning.encoder`), and optionally
    `_before_prefill`, `renumber_positions`, `_prefill_hidden` and `_prefill_context` (the last three: see
    `PrefillLoop`).
    """

    family = ""  # the upstream policy type, reported in `backbone_info["type"]`
    state_in_prefix = False  # whether `embed_for_pruning` and the visual-attention helpers take the state

    def _init_pruning(self, pruner: TokenPruner | None) -> None:
        self.pruner = pruner
        self.last_trace: CallTrace | None = None
        self.last_view: PruningView | None = None
        self.last_selection: TokenSelection | None = None
        self.call_index = 0
        self.fallback_count = 0
        self.strategy_clock = StrategyClock()
        config = pruner.config if pruner is not None else None
        self.carry = CarryOver(config.encoder_refresh) if config and config.encoder == "carry_over" else None
        self.encoder_patches: Tensor | None = None  # [B, tower depth, C] of the last call
        if config is not None and uses_tower(config) and not hasattr(self, "vision_tower"):
            raise ValueError(
                f"pruning.encoder / pack_cameras / vision_dtype are not available for {self.family} yet; "
                "leave them at their defaults (encoder=off, pack_cameras=false, vision_dtype=None)."
            )
        if config is not None and config.encoder == "in_encoder" and pruner.needs_full_grid:
            raise ValueError(
                f"pruning.type={config.type} cannot follow pruning.encoder='in_encoder': it needs every camera's "
                "full token grid; use pruning.encoder='carry_over' or a strategy such as fastv, random or adp."
            )

    @property
    def backbone_info(self) -> dict:
        """What identifies the backbone for saved statistics (TIES calibration)."""
        return {"type": self.family, "vlm_depth": self.vlm_depth,
                "width": self.language_model.config.hidden_size, "tokens_per_camera": self.tokens_per_camera}  # fmt: skip

    def reset_pruning(self) -> None:
        self.call_index = 0
        if self.carry is not None:
            self.carry.reset()
        if self.pruner is not None:
            self.pruner.reset()

    def _before_prefill(self) -> None:
        """Called once per pruned call before any layer runs."""

    def renumber_positions(self, prefix: Prefix) -> Tensor:
        """`[B, L]` RoPE positions of a prefix whose pruned tokens were removed before the VLM."""
        return torch.cumsum(prefix.pad, dim=1) - 1

    @torch.no_grad()
    def pruned_sample_actions(self, images, img_masks, lang_tokens, lang_masks, state: Tensor | None,
                              noise=None, num_steps=None, **kwargs) -> Tensor:  # fmt: skip
        """The upstream `sample_actions` with the strategy applied; `[B, chunk_size, max_action_dim]`."""
        pruner = self.pruner
        if pruner is None or (pruner.is_noop() and not uses_tower(pruner.config)):
            actions = self._unpruned_sample(
                images, img_masks, lang_tokens, lang_masks, state, noise, num_steps, kwargs
            )
            self._record_full_vision_call(img_masks, lang_masks, num_steps)
            return actions
        device = lang_tokens.device
        pruner.check_ready()
        every_prompt = check_language(pruner, lang_masks)
        num_steps = num_steps or self.default_num_steps
        if noise is None:
            shape = (lang_tokens.shape[0], self.config.chunk_size, self.config.max_action_dim)
            noise = self.sample_noise(shape, device)
        self._before_prefill()
        carry = self.carry
        carried = carry.kept if carry is not None and not carry.is_refresh(len(noise)) else None
        prefix, suffix_offset, visual_index = self.encode_for_pruning(
            images, img_masks, lang_tokens, lang_masks, pruner, state, carried
        )
        view = self.make_view(prefix, visual_index, len(images), pruner)
        view.signals.every_prompt = every_prompt
        clock = self.strategy_clock
        clock.seconds = 0.0
        if carried is not None:  # the carried set is this call's selection; the strategy does not run
            kv, selection, fell_back = self.prefill(prefix, suffix_offset, view, pruner, forced=carried)
            run = DenoiseRun(self, state, kv, view, [], pruner.expert_steps)
        else:
            with clock.section(device):
                pruner.prepare(view)
            kv, selection, fell_back = self.prefill(prefix, suffix_offset, view, pruner)
            run = DenoiseRun(self, state, kv, view, pruner.expert_layers(view), pruner.expert_steps)
        if carried is None and pruner.stage == "mask_all_layers":
            run.after_first_step = lambda: self._decide_after_probe(prefix, suffix_offset, view, pruner)
        actions = euler_integrate(
            run,
            noise,
            num_steps,
            rtc_processor=self.rtc_processor,
            rtc_enabled=self._rtc_enabled(),
            inference_delay=kwargs.get("inference_delay"),
            prev_chunk_left_over=kwargs.get("prev_chunk_left_over"),
            execution_horizon=kwargs.get("execution_horizon"),
        )
        if carried is None and pruner.stage == "mask_all_layers":
            selection, fell_back, reruns = run.decision
        else:
            reruns = 0
        view.expert_attention = run.capture.result() if run.capture is not None else view.expert_attention
        view.extras["actions"] = actions
        if carried is None:
            with clock.section(device):
                pruner.observe(view, selection)
        if self.carry is not None:
            if carried is None:
                self.carry.store(selection, view.visual_index)
            self.carry.advance()
        self.last_view, self.last_selection = view, selection
        lengths = run.kv.layer_lengths
        self._record_call(view, selection, lengths, len(images), lang_masks, num_steps, fell_back, reruns)
        return actions

    def encode_for_pruning(self, images, img_masks, lang_tokens, lang_masks, pruner: TokenPruner,
                           state: Tensor | None, carried: TokenSelection | None) -> tuple[Prefix, Tensor, Tensor]:  # fmt: skip
        """`embed_for_pruning`, with the visual tokens from `pruning.encoder` / `pack_cameras` /
        `vision_dtype` when one is set (the upstream embedding otherwise). Records `encoder_patches`."""
        config, num_cameras, batch = pruner.config, len(images), images[0].shape[0]
        if not uses_tower(config):
            self.encoder_patches = None
            return self.embed_for_pruning(images, img_masks, lang_tokens, lang_masks, pruner, state=state)
        # LeRobot already keeps the tower in float32, so only "bfloat16" changes how it runs.
        tower = self.vision_tower(torch.bfloat16 if config.vision_dtype == "bfloat16" else None)
        per_camera, device = tower.token_patches.shape[0], images[0].device
        all_tokens = torch.arange(num_cameras, device=device).repeat_interleave(per_camera)
        if carried is not None:
            encoded = encode_carried(tower, images, carried)
            slots = carried.keep_idx.masked_fill(~carried.valid, len(all_tokens))  # padding -> a spare column
            tokens = encoded.tokens.new_zeros(batch, len(all_tokens) + 1, encoded.tokens.shape[-1])
            tokens = tokens.scatter(1, slots[..., None].expand_as(encoded.tokens), encoded.tokens)[:, :-1]
            vision = EncodedVision(tokens, torch.arange(len(all_tokens), device=device), all_tokens,
                                   encoded.patches)  # fmt: skip
        elif config.encoder == "in_encoder":
            vision = encode_in_encoder(tower, images, config.encoder_layer, config.encoder_keep_ratio,
                                       config.pack_cameras)  # fmt: skip
        else:
            tokens = torch.cat(encode_full(tower, images, config.pack_cameras), dim=1)
            patches = full_patch_counts(batch, tower.depth, num_cameras, per_camera * tower.patches_per_token,
                                        device)  # fmt: skip
            vision = EncodedVision(tokens, torch.arange(len(all_tokens), device=device), all_tokens, patches)
        self.encoder_patches = vision.patches
        return self.embed_for_pruning(images, img_masks, lang_tokens, lang_masks, pruner, state=state,
                                      vision=vision)  # fmt: skip

    @torch.no_grad()
    def visual_attention_columns(self, images, img_masks, lang_tokens, lang_masks,
                                 state: Tensor | None = None) -> tuple[Tensor, Tensor]:  # fmt: skip
        """Unpruned prefill; returns (`[B, depth, M]` attention onto each visual key at every VLM layer,
        mean over heads and valid prefix rows; `[B, M]` valid). TIES calibration uses it."""
        probe = AllLayersProbe(NoPruningConfig())
        self._before_prefill()
        prefix, suffix_offset, visual_index = self.embed_for_pruning(
            images, img_masks, lang_tokens, lang_masks, probe, state=state
        )
        view = self.make_view(prefix, visual_index, len(images), probe)
        probe.prepare(view)
        self.prefill(prefix, suffix_offset, view, probe)
        columns = [view.signals.attention_to_visual("all", layer=layer) for layer in range(view.vlm_depth)]
        return torch.stack(columns, dim=1), view.visual_valid

    def make_view(
        self, prefix: Prefix, visual_index: Tensor, num_cameras: int, pruner: TokenPruner
    ) -> PruningView:
        default_layer = pruner.prune_layer - 1 if pruner.stage == "in_llm" else None
        per_camera = self.tokens_per_camera
        if pruner.config.encoder == "in_encoder":  # the tower's survivors, `encode_in_encoder`'s count
            per_camera = max(1, round(pruner.config.encoder_keep_ratio * per_camera))
        return PruningView(
            visual_valid=prefix.visual_valid,
            camera_ids=prefix.camera_ids,
            num_cameras=num_cameras,
            signals=self.make_signals(prefix, default_layer),
            visual_index=visual_index,
            tokens_per_camera=per_camera,
            vlm_depth=self.vlm_depth,
        )

    def _decide_after_probe(self, prefix: Prefix, suffix_offset: Tensor, view: PruningView,
                            pruner: TokenPruner) -> tuple[PrefixKV | None, TokenSelection | None, bool]:  # fmt: skip
        """Second half of a probing strategy: select from the probe's signals; rebuild the cache if needed."""
        selection, fell_back = self._run_strategy(pruner, view)
        if selection is None:
            return None, None, fell_back
        kv, _, _ = self.prefill(prefix, suffix_offset, view, pruner, forced=selection)
        return kv, selection, fell_back

    def _run_strategy(self, pruner: TokenPruner, view: PruningView) -> tuple[TokenSelection | None, bool]:
        """Returns the strategy's selection and whether it failed and fell back to full vision."""
        try:
            with self.strategy_clock.section(view.visual_valid.device):
                return pruner.select(view), False
        except Exception:
            if pruner.config.fallback == "raise":
                raise
            self.fallback_count += 1
            logger.warning("Strategy %r failed; this call runs with full vision.", pruner.config.type,
                           exc_info=True)  # fmt: skip
            return None, True


def check_language(pruner: TokenPruner, lang_masks: Tensor) -> bool | None:
    """Whether every sample has a language token, read once at call entry when the strategy's attention
    query needs one (None otherwise), so the signals can refuse an empty prompt without a host sync."""
    if pruner.language_query() is None:
        return None
    return bool(lang_masks.any(dim=1).all())


class DenoiseRun:
    """The velocity function of one call's Euler loop: reads the prefix cache, captures the expert's
    attention on the requested steps, and lets a probing strategy swap the cache after the first step."""

    def __init__(self, model: PruningEngine, state: Tensor | None, kv: PrefixKV, view: PruningView,
                 layers: list[int], steps: str):  # fmt: skip
        self.model, self.state, self.kv, self.view, self.steps = model, state, kv, view, steps
        self.capture = model.expert_capture(kv, layers, view.visual_valid.shape[1]) if layers else None
        self.after_first_step = None
        self.decision = (None, False, 0)
        self.step = 0
        kv.reading = True

    def __call__(self, x_t: Tensor, timestep: Tensor) -> Tensor:
        capturing = self.capture is not None and (self.steps == "all" or self.step == 0)
        if capturing:
            self.capture.start()  # explicit calls rather than `with`: torch.compile traces them
            try:
                velocity = self.model.denoise_with_prefix(self.state, self.kv, x_t, timestep)
            finally:
                self.capture.stop()
        else:
            velocity = self.model.denoise_with_prefix(self.state, self.kv, x_t, timestep)
        if self.step == 0 and self.after_first_step is not None:
            self.view.expert_attention = self.capture.result() if self.capture is not None else None
            kv, selection, fell_back = self.after_first_step()
            self.decision = (selection, fell_back, int(kv is not None))
            if kv is not None:
                self.kv = kv
                kv.reading = True
                velocity = self.model.denoise_with_prefix(self.state, kv, x_t, timestep)
        self.step += 1
        return velocity


class AllLayersProbe(TokenPruner):
    """Runs the prefix unpruned and records every layer's input (for attention at all layers)."""

    stage = "mask_all_layers"

    def prepare(self, view: PruningView) -> None:
        view.signals.capture_layers(range(view.vlm_depth))

    def select(self, view: PruningView) -> None:
        return None
