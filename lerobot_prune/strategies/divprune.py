"""`divprune`: max-min diversity over the projector outputs, before the VLM (methods_spec §2.5)."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import KeepRatioConfig
from ..ops import max_min_diversity
from ..registry import register_strategy
from ..selection import TokenSelection, indices_to_selection
from .base import PruningView, TokenPruner


@dataclass
class DivPruneConfig(KeepRatioConfig):
    """Args:
    keep_ratio: Fraction of valid visual tokens kept (DivPrune's LLaVA default 0.098; VLA grid 0.5-0.125).
    preserve_positions: Keep original RoPE positions instead of renumbering the shorter prefix.
    """

    keep_ratio: float = 0.5
    preserve_positions: bool = False
    summary = "DivPrune: keeps the most mutually distant visual embeddings (greedy max-min), before the VLM."


@register_strategy("divprune", DivPruneConfig)
class DivPrunePruner(TokenPruner):
    """Global over all valid visual tokens of all cameras ([DECISION] §2.5); scores play no role."""

    stage = "pre_llm"
    signals = frozenset({"visual_embeds"})

    def select(self, view: PruningView) -> TokenSelection:
        budget, bound = self.budget(view)
        picks = max_min_diversity(view.signals.visual_embeds(), view.visual_valid, budget, bound)
        return indices_to_selection(picks, budget, view.num_visual)
