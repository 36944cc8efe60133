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
from ..profiling import StrategyClock
from ..selection import TokenSelection
from ..strategies.base import AttentionQuery, PruningView, SignalSource, TokenPruner
from ..strategies.none import NoPruningConfig
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
    `layouts[l]` says where layer l's cached visual keys sit in the view's visual index space.
    """

    def __init__(self, depth: int):
        self.keys: list[Tensor | None] = [None] * depth
        self.values: list[Tensor | None] = [None] * depth
        self.key_masks: list[Tensor | None] = [None] * depth  # [B, L_l] bool per layer
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

    def __init__(self, model: PrunedPI0Pytorch, prefix: Prefix, default_layer: int | None):
        self.model, self.prefix, self.default_layer = model, prefix, default_layer
        self.kv: PrefixKV | None = None
        self.wanted: set[int] = set() if default_layer is None else {default_layer}
        self.records: dict[int, _LayerInput] = {}
        self.layers_run = 0

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

    def visual_embeds(self) -> Tensor:
        return self.prefix.embs[:, : self.prefix.num_visual]

    def text_embeds(self) -> tuple[Tensor, Tensor]:
        return self.prefix.embs[:, self.prefix.num_visual :], self.prefix.pad[:, self.prefix.num_visual :]

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
        lang_pad = prefix.pad[:, prefix.num_visual :]
        if isinstance(query, str) and query != "all" and not bool(lang_pad.any(dim=1).all()):
            raise ValueError(
                f"attention query {query!r} needs a language token in every sample, but a prompt is empty; "
                "check that the batch carries a task string (or use query='all')."
            )
        lang_rows = torch.arange(prefix.num_visual, length, device=prefix.pad.device).expand(batch, -1)
        if isinstance(query, Tensor):
            rows, row_weight = lang_rows, query.float() * lang_pad
        elif query == "last_text":
            last = (lang_pad.long() * torch.arange(1, lang_pad.shape[1] + 1, device=lang_pad.device)).argmax(
                1
            )
            rows = (prefix.num_visual + last)[:, None]
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
    weights the expert's `self_attn` modules already compute (forward hooks, no recomputation).

    Use as a context manager around one denoising step; `result()` averages over the captured steps.
    """

    def __init__(self, model: PrunedPI0Pytorch, kv: PrefixKV, layers: list[int], num_visual: int):
        self.model, self.kv, self.layers, self.num_visual = model, kv, layers, num_visual
        self.total: Tensor | None = None  # [B, len(layers), M]
        self.steps = 0
        self._handles = []

    def __enter__(self) -> ExpertAttentionCapture:
        expert_layers = self.model.expert_model.layers
        for slot, layer_idx in enumerate(self.layers):
            hook = self._hook(slot, layer_idx)
            self._handles.append(expert_layers[layer_idx].self_attn.register_forward_hook(hook))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.steps += 1

    def _hook(self, slot: int, layer_idx: int):
        chunk = self.model.config.chunk_size

        def record(module, args, output):
            with self.model.strategy_clock.section(output[0].device):
                accumulate(output[1])

        def accumulate(weights: Tensor) -> None:  # [B, H, S, L_l + S]
            if weights is None:
                raise RuntimeError(
                    "expert attention weights are missing: the expert must run eager attention."
                )
            layout = self.kv.layouts[layer_idx]
            per_column = weights[:, :, -chunk:, : layout.num_visual].float().mean(dim=(1, 2))
            values = layout.scatter(per_column, self.num_visual)
            if self.total is None:
                self.total = values.new_zeros(values.shape[0], len(self.layers), self.num_visual)
            self.total[:, slot] += values

        return record

    def result(self) -> Tensor | None:
        return None if self.total is None else self.total / max(self.steps, 1)


class PrunedPI0Pytorch(PI0Pytorch):
    """LeRobot's π0 model whose `sample_actions` applies a `TokenPruner` (methods_spec §1.3-1.4)."""

    modeling_module = modeling_pi0

    def __init__(self, config, rtc_processor=None, pruner: TokenPruner | None = None):
        with backbone_sizes(self.modeling_module, getattr(config, "arch_override", None)):
            super().__init__(config, rtc_processor=rtc_processor)
        self.pruner = pruner
        self.last_trace: CallTrace | None = None
        self.last_view: PruningView | None = None
        self.last_selection: TokenSelection | None = None
        self.call_index = 0
        self.fallback_count = 0
        self.strategy_clock = StrategyClock()

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
    def backbone_info(self) -> dict:
        """What identifies the backbone for saved statistics (TIES calibration)."""
        lm = self.language_model.config
        return {"type": "pi0", "vlm_depth": lm.num_hidden_layers, "width": lm.hidden_size,
                "tokens_per_camera": self.tokens_per_camera}  # fmt: skip

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
            self.last_selection = None
            self.call_index += 1
            return super().sample_actions(
                images, img_masks, lang_tokens, lang_masks, state, noise=noise, num_steps=num_steps, **kwargs
            )
        pruner.check_ready()
        num_steps = num_steps or self.config.num_inference_steps
        if noise is None:
            shape = (state.shape[0], self.config.chunk_size, self.config.max_action_dim)
            noise = self.sample_noise(shape, state.device)
        self.language_model.config._attn_implementation = "eager"  # noqa: SLF001  (as upstream)
        self.expert_model.config._attn_implementation = "eager"  # noqa: SLF001
        prefix, suffix_offset, visual_index = self.embed_for_pruning(images, img_masks, lang_tokens, lang_masks,
                                                                     pruner)  # fmt: skip
        view = self.make_view(prefix, visual_index, len(images), pruner)
        clock = self.strategy_clock
        clock.seconds = 0.0
        with clock.section(state.device):
            pruner.prepare(view)
        kv, selection, fell_back = self.prefill(prefix, suffix_offset, view, pruner)
        run = _DenoiseRun(self, state, kv, view, pruner.expert_layers(view), pruner.expert_steps)
        if pruner.stage == "mask_all_layers":
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
        if pruner.stage == "mask_all_layers":
            selection, fell_back, reruns = run.decision
        else:
            reruns = 0
        view.expert_attention = run.capture.result() if run.capture is not None else view.expert_attention
        view.extras["actions"] = actions
        with clock.section(state.device):
            pruner.observe(view, selection)
        self.last_view, self.last_selection = view, selection
        self.last_trace = CallTrace(
            kept_per_camera=_count_per_camera(
                view.camera_ids, selection, view.num_cameras, view.visual_valid
            ).cpu(),
            valid_per_camera=_count_per_camera(
                view.camera_ids, None, view.num_cameras, view.visual_valid
            ).cpu(),
            prefix_lengths=run.kv.layer_lengths,
            full_length=len(images) * self.tokens_per_camera + lang_masks.shape[1],
            suffix_length=self.config.chunk_size + 1,
            num_steps=num_steps,
            fallback=fell_back,
            extra_prefix_passes=reruns,
            extra_steps=reruns,
            diagnostics=pruner.diagnostics(),
        )
        self.call_index += 1
        return actions

    @torch.no_grad()
    def visual_attention_columns(self, images, img_masks, lang_tokens, lang_masks) -> tuple[Tensor, Tensor]:
        """Unpruned prefill; returns (`[B, depth, M]` attention onto each visual key at every VLM layer,
        mean over heads and valid prefix rows; `[B, M]` valid). TIES calibration uses it."""
        probe = _AllLayersProbe(NoPruningConfig())
        prefix, suffix_offset, visual_index = self.embed_for_pruning(
            images, img_masks, lang_tokens, lang_masks, probe
        )
        view = self.make_view(prefix, visual_index, len(images), probe)
        probe.prepare(view)
        self.prefill(prefix, suffix_offset, view, probe)
        columns = [view.signals.attention_to_visual("all", layer=layer) for layer in range(view.vlm_depth)]
        return torch.stack(columns, dim=1), view.visual_valid

    def embed_for_pruning(
        self, images, img_masks, lang_tokens, lang_masks, pruner
    ) -> tuple[Prefix, Tensor, Tensor]:
        """The prefix as the VLM's first layer sees it (compacted if asked), the suffix offset `[B]` and
        the original visual index of each visual column `[M]`."""
        embs, pad, att = self.embed_prefix(images, img_masks, lang_tokens, lang_masks)
        num_visual = len(images) * self.tokens_per_camera
        camera_ids = torch.arange(len(images), device=pad.device).repeat_interleave(self.tokens_per_camera)
        prefix = Prefix(embs, pad, att, torch.cumsum(pad, dim=1) - 1, num_visual, camera_ids)
        suffix_offset = pad.sum(dim=1)
        visual_index = torch.arange(num_visual, device=pad.device)
        if pruner.config.compact:
            cols = pad.any(dim=0).nonzero().squeeze(1)
            prefix = prefix.take_columns(cols)
            visual_index = cols[: prefix.num_visual]
        return prefix, suffix_offset, visual_index

    def make_view(
        self, prefix: Prefix, visual_index: Tensor, num_cameras: int, pruner: TokenPruner
    ) -> PruningView:
        default_layer = pruner.prune_layer - 1 if pruner.stage == "in_llm" else None
        return PruningView(
            visual_valid=prefix.visual_valid,
            camera_ids=prefix.camera_ids,
            num_cameras=num_cameras,
            call_index=self.call_index,
            signals=PaliGemmaSignals(self, prefix, default_layer),
            visual_index=visual_index,
            tokens_per_camera=self.tokens_per_camera,
            vlm_depth=len(self.language_model.layers),
        )

    def prefill(self, prefix: Prefix, suffix_offset: Tensor, view: PruningView, pruner: TokenPruner,
                forced: TokenSelection | None = None,
                training: bool = False) -> tuple[PrefixKV, TokenSelection | None, bool]:  # fmt: skip
        """Runs the VLM over the prefix, applying `pruner`; returns (cache, selection, fell back).

        `training` returns as soon as `pruner.select_for_training` decided at layer K (the cache is then
        incomplete); the training forward (`backbones/training.py`) applies the selection itself.

        The strategy decides before layer K (K=0: before the VLM, on embeddings). In "drop" mode layers
        >= K run on the kept tokens only; in "mask" mode they run on the whole sequence with the pruned
        keys masked. Kept tokens keep their positions unless a pre-LLM strategy renumbers them.
        `forced` applies a known selection before layer 0 (the second pass of a probing strategy).
        """
        signals: PaliGemmaSignals = view.signals
        layers = self.language_model.layers
        kv = PrefixKV(len(layers))
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
        hidden = prefix.embs
        if layers[0].self_attn.q_proj.weight.dtype == torch.bfloat16:
            hidden = hidden.to(torch.bfloat16)
        attention_mask = prepare_attention_masks_4d(mask_2d, dtype=hidden.dtype)
        position_embeddings = self.language_model.rotary_emb(hidden, prefix.pos)
        layer_lengths = []
        for layer_idx, layer in enumerate(layers):
            if layer_idx == K:
                if training:
                    return kv, pruner.select_for_training(view), False
                if forced is not None:
                    selection = forced
                else:
                    selection, fell_back = self._run_strategy(pruner, view)
                if selection is not None:
                    if pruner.mode == "drop":
                        prefix = replace(prefix, embs=hidden).keep(selection)
                        hidden = prefix.embs
                        layout = VisualLayout(prefix.num_visual, selection.keep_idx, selection.valid.float())
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
            kv.layouts[layer_idx] = layout
            layer_lengths.append(hidden.shape[1])
            signals.record(layer_idx, hidden, prefix, mask_2d, layout)
            hidden = layer(
                hidden,
                attention_mask=attention_mask,
                position_ids=prefix.pos,
                past_key_values=kv,
                use_cache=True,
                position_embeddings=position_embeddings,
            )
        kv.suffix_offset = suffix_offset
        kv.layer_lengths = layer_lengths
        return kv, selection, fell_back

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


class _DenoiseRun:
    """The velocity function of one call's Euler loop: reads the prefix cache, captures the expert's
    attention on the requested steps, and lets a probing strategy swap the cache after the first step."""

    def __init__(self, model: PrunedPI0Pytorch, state: Tensor, kv: PrefixKV, view: PruningView,
                 layers: list[int], steps: str):  # fmt: skip
        self.model, self.state, self.kv, self.view, self.steps = model, state, kv, view, steps
        self.capture = (
            ExpertAttentionCapture(model, kv, layers, view.visual_valid.shape[1]) if layers else None
        )
        self.after_first_step = None
        self.decision = (None, False, 0)
        self.step = 0
        kv.reading = True

    def __call__(self, x_t: Tensor, timestep: Tensor) -> Tensor:
        capturing = self.capture is not None and (self.steps == "all" or self.step == 0)
        if capturing:
            with self.capture:
                velocity = self.model.denoise_with_prefix(self.state, self.kv, x_t, timestep)
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


class _AllLayersProbe(TokenPruner):
    """Runs the prefix unpruned and records every layer's input (for attention at all layers)."""

    stage = "mask_all_layers"

    def prepare(self, view: PruningView) -> None:
        view.signals.capture_layers(range(view.vlm_depth))

    def select(self, view: PruningView) -> None:
        return None


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
