"""`dtp`: distracting-token pruning, an accuracy method (methods_spec §6).

Per call and per camera: the important region G is the top of the prompt->vision attention (layers C,
Gaussian-smoothed on the patch grid, corners suppressed); the action queries' attention at the first
denoising step, weighted per layer by its visual-attention share, marks as distracting every token
outside G that the actions attend to more than `tau` times the strongest token inside G. A probe pass
(prefix + first step) measures this; when something is distracting the prefix is recomputed with those
tokens hidden from every layer and all denoising steps run again from the same noise.

Training: DTP cannot prune in a training forward (its rule needs the action expert's attention from a
denoising probe, which a flow-matching training step does not run), so `check_training` raises; train
with `--policy.pruning.in_training=false` and DTP prunes at inference only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..config import PruningConfig, check_choice, check_layers, check_range
from ..ops import gaussian_smooth_grid, suppress_corners
from ..registry import register_strategy
from ..selection import TokenSelection, top_k
from .base import PruningView, TokenPruner

APPLY_MODES = ("mask", "drop")


@dataclass
class DTPConfig(PruningConfig):
    """Args:
    layers: C, VLM layers whose prompt->vision attention defines the important region ([DECISION] {4, 6}).
    region_ratio: k per camera = round(region_ratio * tokens per camera) ([DECISION] 0.15 -> 38 of 256).
    tau: Tolerance; smaller prunes more ([DECISION] 0.5; inf = never prune).
    smoothing: Gaussian smoothing of the relevance on the patch grid (3x3, sigma 1 patch).
    sigma: Gaussian sigma in patches.
    kernel_size: Gaussian taps.
    corner_suppression: Set the 4 corner patches to the camera's minimum before the top-k.
    apply: "mask" (hide D's keys in every layer; [DECISION]) or "drop" (remove D, positions preserved).
    """

    layers: list[int] = field(default_factory=lambda: [4, 6])
    region_ratio: float = 0.15
    tau: float = 0.5
    smoothing: bool = True
    sigma: float = 1.0
    kernel_size: int = 3
    corner_suppression: bool = True
    apply: str = "mask"
    summary = "DTP: hides tokens outside the prompt's region that the actions attend to (probe + re-run)."
    sweep_field = "tau"  # DTP has no keep ratio

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.tau > 0:
            raise ValueError(f"pruning.tau={self.tau} must be > 0 (paper values 0.5-1.22; inf disables).")
        check_range("pruning.region_ratio", self.region_ratio, 0.0, 1.0)
        check_range("pruning.sigma", self.sigma, 0.0, math.inf)
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"pruning.kernel_size={self.kernel_size} must be an odd number >= 1.")
        if not self.layers:
            raise ValueError(
                "pruning.layers is empty; give the VLM layers of the important region, e.g. [4, 6]."
            )
        check_choice("pruning.apply", self.apply, APPLY_MODES)

    def validate_for_model(self, vlm_depth: int) -> None:
        check_layers("pruning.layers", self.layers, vlm_depth)

    def is_noop(self) -> bool:
        return math.isinf(self.tau)

    @classmethod
    def small_backbone_settings(cls, vlm_depth: int) -> dict:
        return {"layers": [1, 2]} if vlm_depth <= 6 else {}

    @classmethod
    def test_settings(cls, vlm_depth: int) -> dict:
        return cls.small_backbone_settings(vlm_depth) | {"tau": 0.3}


@register_strategy("dtp", DTPConfig)
class DTPPruner(TokenPruner):
    stage = "mask_all_layers"
    needs_full_grid = True  # smooths relevance on each camera's patch grid
    expert_steps = "first"
    signals = frozenset({"attention_to_visual", "expert_attention"})
    cannot_train = "dtp needs the action expert's attention from a denoising probe"

    def __init__(self, config: DTPConfig):
        super().__init__(config)
        self.mode = config.apply
        self._diagnostics: dict = {}

    def language_query(self) -> str | None:
        return "text"

    def prepare(self, view: PruningView) -> None:
        view.signals.capture_layers(self.config.layers)

    def expert_layers(self, view: PruningView) -> list[int]:
        return list(range(view.vlm_depth))

    def important_region(self, view: PruningView) -> Tensor:
        """`[B, C', G*G]` bool: G per camera block of the view."""
        relevance = torch.stack(
            [view.signals.attention_to_visual("text", layer=layer) for layer in self.config.layers]
        ).mean(0)  # [B, M]
        batch, per_camera = relevance.shape[0], view.tokens_per_camera
        grid = math.isqrt(per_camera)
        blocks = relevance.reshape(batch * (view.num_visual // per_camera), per_camera)
        if self.config.smoothing:
            blocks = gaussian_smooth_grid(blocks, grid, self.config.sigma, self.config.kernel_size)
        if self.config.corner_suppression:
            blocks = suppress_corners(blocks, grid)
        k = max(1, round(self.config.region_ratio * per_camera))
        every = torch.ones_like(blocks, dtype=torch.bool)
        region = top_k(blocks, every, torch.full((blocks.shape[0],), k, device=blocks.device), k)
        return region.keep_mask(per_camera).reshape(batch, -1, per_camera)

    def action_pattern(self, view: PruningView) -> Tensor:
        """`[B, M]` A = Σ_l w_l Ā_l with w_l the layer's share of visual attention mass."""
        per_layer = view.expert_attention * view.visual_valid[:, None].float()  # [B, L, M]
        mass = per_layer.sum(-1, keepdim=True)
        weights = mass / mass.sum(1, keepdim=True).clamp(min=1e-12)
        return (weights * per_layer).sum(1)

    def select(self, view: PruningView) -> TokenSelection | None:
        batch, per_camera = view.visual_valid.shape[0], view.tokens_per_camera
        region = self.important_region(view)  # [B, C', Mc]
        pattern = self.action_pattern(view).reshape(batch, -1, per_camera)
        valid = view.visual_valid.reshape(batch, -1, per_camera)
        region &= valid
        strongest = pattern.masked_fill(~region, float("-inf")).amax(-1, keepdim=True)
        distracting = ~region & valid & (pattern > self.config.tau * strongest)
        unimportant = ~region & valid
        self._diagnostics = {
            "unimportant_attention_mass": (pattern * unimportant).sum((1, 2)),
            "region_size": region.sum((1, 2)),
            "distracting": distracting.sum((1, 2)),
        }
        keep = view.visual_valid & ~distracting.reshape(batch, -1)
        counts = keep.sum(1)
        if bool((counts == view.visual_valid.sum(1)).all()):
            return None
        return top_k(keep.float(), keep, counts, int(counts.max()))

    def diagnostics(self) -> dict:
        return dict(self._diagnostics)
