"""`fastv`: attention of one query token at layer K-1, top-k, in-LLM drop at K (methods_spec §2.3)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from ..config import KeepRatioConfig, check_prune_layer
from ..registry import register_strategy
from .base import PruningView, TopKScorer

FASTV_QUERIES = ("last_text", "all")


@dataclass
class FastVConfig(KeepRatioConfig):
    """Args:
    keep_ratio: Fraction of valid visual tokens kept (VLA-Pruner grid: 0.5, 0.25, 0.125).
    layer: K, the first VLM layer that sees only kept tokens; scores come from layer K-1 (FastV: 2).
    query: "last_text" = the last valid language token (π0 has no causal last token, [DECISION] B1);
        "all" = mean over every valid prefix token (the "prefill" variant).
    """

    keep_ratio: float = 0.5
    layer: int = 2
    query: str = "last_text"
    summary = "FastV: keeps the visual tokens the last prompt token attends to most at layer K-1."

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.query not in FASTV_QUERIES:
            raise ValueError(f"pruning.query={self.query!r} is not valid; choose one of {FASTV_QUERIES}.")

    def validate_for_model(self, vlm_depth: int) -> None:
        check_prune_layer(self.layer, vlm_depth)

    @classmethod
    def test_settings(cls, vlm_depth: int) -> dict:
        return {"keep_ratio": 0.25}


@register_strategy("fastv", FastVConfig)
class FastVPruner(TopKScorer):
    stage = "in_llm"
    signals = frozenset({"attention_to_visual"})

    def language_query(self) -> str | None:
        return self.config.query

    def score(self, view: PruningView) -> Tensor:
        return view.signals.attention_to_visual(self.config.query)
