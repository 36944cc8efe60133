"""The rank-selection baselines TIES compares against (methods_spec §2.7): a fixed band of the ranking of
the attention column sums at layer K-1 (top, bottom of the top 2k, middle, uniform over all ranks)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..config import KeepRatioConfig, check_prune_layer
from ..ops import uniform_rank_sample
from ..registry import register_strategy
from ..selection import TokenSelection, indices_to_selection
from .base import PruningView, TokenPruner
from .ties import ranked, take_ranks


@dataclass
class TIESRankConfig(KeepRatioConfig):
    """Args:
    keep_ratio: Fraction of valid visual tokens kept (TIES: 56/256).
    layer: K; ranks come from the attention column sums at layer K-1.
    """

    keep_ratio: float = 0.219
    layer: int = 2
    is_ablation = True

    def validate_for_model(self, vlm_depth: int) -> None:
        check_prune_layer(self.layer, vlm_depth)


class RankPruner(TokenPruner):
    """Keeps a fixed band of ranks of the attention column sums at layer K-1 (§2.7)."""

    stage = "in_llm"
    signals = frozenset({"attention_to_visual"})

    def first_rank(self, num_valid: Tensor, budget: Tensor) -> Tensor:
        return torch.zeros_like(budget)

    def select(self, view: PruningView) -> TokenSelection:
        order = ranked(view.signals.attention_to_visual("all"), view.visual_valid)
        (budget, bound), num_valid = self.budget(view), view.visual_valid.sum(1)
        return indices_to_selection(self.pick(order, num_valid, budget, bound), budget, view.num_visual)

    def pick(self, order: Tensor, num_valid: Tensor, budget: Tensor, bound: int) -> Tensor:
        return take_ranks(order, self.first_rank(num_valid, budget), bound)


@dataclass
class TIESTopKConfig(TIESRankConfig):
    summary = "TIES baseline: the top-k ranks of the attention column sums at layer K-1."


@register_strategy("ties_topk", TIESTopKConfig)
class TIESTopK(RankPruner):
    pass


@dataclass
class TIESBottomKConfig(TIESRankConfig):
    summary = "TIES baseline: the last k of the top 2k ranks ([DECISION] K_top = 2k)."


@register_strategy("ties_bottomk", TIESBottomKConfig)
class TIESBottomK(RankPruner):
    def first_rank(self, num_valid: Tensor, budget: Tensor) -> Tensor:
        return (torch.minimum(2 * budget, num_valid) - budget).clamp(min=0)


@dataclass
class TIESMiddleConfig(TIESRankConfig):
    summary = "TIES baseline: k consecutive ranks from the middle of the ranking."


@register_strategy("ties_middle", TIESMiddleConfig)
class TIESMiddle(RankPruner):
    def first_rank(self, num_valid: Tensor, budget: Tensor) -> Tensor:
        return torch.div(num_valid - budget, 2, rounding_mode="floor")


@dataclass
class TIESUniformConfig(TIESRankConfig):
    summary = "TIES baseline: k ranks spread uniformly over the whole ranking."


@register_strategy("ties_uniform", TIESUniformConfig)
class TIESUniform(RankPruner):
    def pick(self, order: Tensor, num_valid: Tensor, budget: Tensor, bound: int) -> Tensor:
        return uniform_rank_sample(order, num_valid, budget, bound)
