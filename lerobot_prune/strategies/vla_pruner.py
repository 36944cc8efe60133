"""`vla_pruner`: dual-level (semantic + temporally smoothed action attention) selection with a max-min
diversity filter, in-LLM at K=3 (methods_spec §3), and its ablations (§2.6).

The π0 hook (action attention = the expert's action queries onto the visual prefix keys, averaged over
denoising steps and the later half of the expert layers) is reconstructed from the paper's description
(§3.6): the official code covers OpenVLA only.

Training (`select_for_training`, all variants): the action-attention history belongs to an episode and a
training batch holds independent frames, so training keeps the top-k of the semantic (prefill) criterion
alone, with no warm-up; the history is neither read nor written.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import ClassVar

from torch import Tensor

from ..config import (
    KeepRatioConfig,
    check_choice,
    check_layers,
    check_prune_layer,
    check_range,
)
from ..ops import max_min_diversity
from ..registry import register_strategy
from ..selection import TokenSelection, indices_to_selection, top_k
from .base import PruningView, TokenPruner

SEMANTIC_QUERIES = {"prefill": "all", "fastv_last_token": "last_text", "text": "text"}
WEIGHTINGS = ("paper", "code")


@dataclass
class VLAPrunerConfig(KeepRatioConfig):
    """Args:
    keep_ratio: Fraction of valid visual tokens kept (π0 grid: 0.5, 0.25, 0.125).
    layer: K; layers 0..K-1 see every token, the semantic score comes from layer K-1 (code: 3).
    window: w, action-attention vectors kept; the first w calls of an episode run unpruned (warm-up).
    gamma: temporal decay γ in (0, 1].
    weighting: "paper" (newest call weight γ, then γ², ...) or "code" (oldest weight 1, newest γ^(w-1)).
    semantic: "prefill" (mean over all valid prefix rows), "fastv_last_token" or "text" rows.
    action_layers: expert layers averaged for the action score; empty = the later half [L//2, L).
    """

    keep_ratio: float = 0.5
    layer: int = 3
    window: int = 3
    gamma: float = 0.8
    weighting: str = "paper"
    semantic: str = "prefill"
    action_layers: list[int] = field(default_factory=list)
    summary = "VLA-Pruner: union of prefill- and (temporal) action-attention top-k, diversity-filtered."

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("pruning.gamma", self.gamma, 0.0, 1.0)
        if self.window < 1:
            raise ValueError(f"pruning.window={self.window} must be >= 1 (the paper's w=3).")
        check_choice("pruning.weighting", self.weighting, WEIGHTINGS)
        check_choice("pruning.semantic", self.semantic, tuple(SEMANTIC_QUERIES))

    def validate_for_model(self, vlm_depth: int) -> None:
        check_prune_layer(self.layer, vlm_depth)
        check_layers("pruning.action_layers", self.action_layers, vlm_depth)

    @classmethod
    def test_settings(cls, vlm_depth: int) -> dict:
        return {"window": 1, "keep_ratio": 0.25}


def temporal_weights(length: int, gamma: float, weighting: str) -> list[float]:
    """Weights of the stored vectors, oldest first, normalised to sum 1 (§3.3, ambiguity V1)."""
    if weighting == "paper":
        raw = [gamma ** (length - i) for i in range(length)]  # newest gets γ^1, oldest γ^length
    else:
        raw = [gamma**i for i in range(length)]  # oldest 1, newest γ^(length-1)
    total = sum(raw)
    return [w / total for w in raw]


def min_max(scores: Tensor, valid: Tensor) -> Tensor:
    """Per-row min-max normalisation over valid entries (`[B, M]`); constant rows become 0."""
    low = scores.masked_fill(~valid, float("inf")).amin(1, keepdim=True)
    high = scores.masked_fill(~valid, float("-inf")).amax(1, keepdim=True)
    return ((scores - low) / (high - low).clamp(min=1e-12)).masked_fill(~valid, 0.0)


@register_strategy("vla_pruner", VLAPrunerConfig)
class VLAPruner(TokenPruner):
    """Per-episode state: a deque of the last `window` action-attention vectors `[B, num_cams * 256]`.

    The ablations (§2.6) are subclasses that replace `rank`, the rule applied once the history is warm.
    """

    stage = "in_llm"
    needs_full_grid = True  # the attention history is stored per grid position
    signals = frozenset({"attention_to_visual", "visual_embeds", "expert_attention"})
    # Whether `rank` reads the action-attention history (and so the first `window` calls run unpruned).
    uses_history: ClassVar[bool] = True
    training_diagnostics = {"warm": 1.0}  # no warm-up in training

    def __init__(self, config: VLAPrunerConfig):
        super().__init__(config)
        self.history: deque[Tensor] = deque(maxlen=config.window)
        self._diagnostics: dict = {}

    def reset(self) -> None:
        self.history.clear()
        self._diagnostics = {}

    def language_query(self) -> str | None:
        return SEMANTIC_QUERIES[self.config.semantic]

    def expert_layers(self, view: PruningView) -> list[int]:
        if not self.uses_history:
            return []
        return list(self.config.action_layers) or list(range(view.vlm_depth // 2, view.vlm_depth))

    def semantic_scores(self, view: PruningView) -> Tensor:
        """`[B, M]` S_sem: the prefill attention onto the visual keys at layer K-1."""
        return view.signals.attention_to_visual(SEMANTIC_QUERIES[self.config.semantic])

    def smoothed_action_scores(self, view: PruningView) -> Tensor:
        """`[B, M]` Ŝ_act from the stored vectors, in the view's visual columns."""
        weights = temporal_weights(len(self.history), self.config.gamma, self.config.weighting)
        smoothed = sum(w * h for w, h in zip(weights, self.history, strict=True))
        return smoothed[:, view.visual_index]

    def select(self, view: PruningView) -> TokenSelection | None:
        batch = view.visual_valid.shape[0]
        if self.history and self.history[0].shape[0] != batch:
            self.history.clear()
        warm = not self.uses_history or len(self.history) == self.config.window
        self._diagnostics = {"warm": warm, "history_length": len(self.history)}
        if not warm:
            return None
        return self.rank(view, *self.budget(view))

    def rank(self, view: PruningView, budget: Tensor, bound: int) -> TokenSelection:
        """The selection once the history is warm (dual level here; the ablations override it).

        Args:
            budget: `[B]` long kept count per sample; bound: a host-side upper bound of it.
        """
        return self.dual_level(
            view, self.semantic_scores(view), self.smoothed_action_scores(view), budget, bound
        )

    def dual_level(self, view: PruningView, semantic: Tensor, action: Tensor, budget: Tensor, bound: int):
        """Union of the two top-M~ sets, then max-min diversity on layer-0 embeddings inside the union."""
        num_visual = view.num_visual
        union = top_k(semantic, view.visual_valid, budget, bound).keep_mask(num_visual)
        union |= top_k(action, view.visual_valid, budget, bound).keep_mask(num_visual)
        union_size = union.sum(1)
        self._diagnostics["union_size"] = union_size
        self._diagnostics["diversity_filtered"] = union_size > budget
        picks = max_min_diversity(view.signals.visual_embeds(), union, budget, bound)
        return indices_to_selection(picks, budget, num_visual)

    def select_for_training(self, view: PruningView) -> TokenSelection:
        return top_k(self.semantic_scores(view), view.visual_valid, *self.budget(view))

    def observe(self, view: PruningView, selection: TokenSelection | None) -> None:
        if view.expert_attention is None:
            return
        per_token = view.expert_attention.mean(dim=1)  # [B, M]
        full = per_token.new_zeros(per_token.shape[0], view.full_visual)
        self.history.append(full.index_copy(1, view.visual_index, per_token))

    def diagnostics(self) -> dict:
        return dict(self._diagnostics)


@dataclass
class VLAPrunerPrefillOnlyConfig(VLAPrunerConfig):
    summary = "VLA-Pruner ablation: top-k of the prefill (semantic) attention only, no warm-up."
    is_ablation = True

    @classmethod
    def test_settings(cls, vlm_depth: int) -> dict:
        return {}


@register_strategy("vla_pruner_prefill_only", VLAPrunerPrefillOnlyConfig)
class VLAPrunerPrefillOnly(VLAPruner):
    uses_history = False

    def rank(self, view: PruningView, budget: Tensor, bound: int) -> TokenSelection:
        return top_k(self.semantic_scores(view), view.visual_valid, budget, bound)


@dataclass
class VLAPrunerActionOnlyConfig(VLAPrunerConfig):
    summary = "VLA-Pruner ablation: top-k of the temporally smoothed action attention only."
    is_ablation = True

    @classmethod
    def test_settings(cls, vlm_depth: int) -> dict:
        return {"window": 1}


@register_strategy("vla_pruner_action_only", VLAPrunerActionOnlyConfig)
class VLAPrunerActionOnly(VLAPruner):
    def language_query(self) -> str | None:
        return None  # `rank` reads no language rows

    def rank(self, view: PruningView, budget: Tensor, bound: int) -> TokenSelection:
        return top_k(self.smoothed_action_scores(view), view.visual_valid, budget, bound)


@dataclass
class VLAPrunerFusionConfig(VLAPrunerConfig):
    """Args:
    alpha: weight of the min-max normalised semantic score ([DECISION] 0.5, §2.6).
    """

    alpha: float = 0.5
    summary = "VLA-Pruner ablation: top-k of alpha*semantic + (1-alpha)*action (min-max normalised)."
    is_ablation = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("pruning.alpha", self.alpha, 0.0, 1.0, low_open=False)

    @classmethod
    def test_settings(cls, vlm_depth: int) -> dict:
        return {"window": 1}


@register_strategy("vla_pruner_fusion", VLAPrunerFusionConfig)
class VLAPrunerFusion(VLAPruner):
    def rank(self, view: PruningView, budget: Tensor, bound: int) -> TokenSelection:
        semantic, action = self.semantic_scores(view), self.smoothed_action_scores(view)
        valid, alpha = view.visual_valid, self.config.alpha
        return top_k(
            alpha * min_max(semantic, valid) + (1 - alpha) * min_max(action, valid), valid, budget, bound
        )
