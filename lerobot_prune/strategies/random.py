"""`random`: a uniformly random subset of the valid visual tokens (methods_spec §2.2)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import PruningConfig, check_keep_ratio
from ..registry import register_strategy
from ..selection import TokenSelection, top_k
from .base import PruningView, TokenPruner


@dataclass
class RandomConfig(PruningConfig):
    """Args:
    keep_ratio: Fraction of valid visual tokens kept (ADP Table 14 uses 0.5).
    seed: Seed of the per-episode stream of random draws (ADP uses 42).
    preserve_positions: Keep original RoPE positions instead of renumbering the shorter prefix.
    """

    keep_ratio: float = 0.5
    seed: int = 42
    preserve_positions: bool = False
    summary = "Baseline: keeps a seeded uniformly random subset of the visual tokens, before the VLM."

    def __post_init__(self) -> None:
        super().__post_init__()
        check_keep_ratio(self.keep_ratio)


@register_strategy("random", RandomConfig)
class RandomPruner(TokenPruner):
    """Scores are one random draw per call, shared by every row of the batch, so a sample gets the same
    tokens whether it runs alone or in a batch; each row's subset is uniform over its valid tokens."""

    stage = "pre_llm"

    def select_for_training(self, view: PruningView) -> TokenSelection:
        """A fresh subset per training sample and step from torch's global generator (seeded by
        `lerobot-train --seed`): the per-call stream of `select` would repeat one subset every step."""
        scores = torch.rand(view.visual_valid.shape, device=view.visual_valid.device)
        return top_k(scores, view.visual_valid, view.budget(self.config.keep_ratio))

    def select(self, view: PruningView) -> TokenSelection:
        generator = torch.Generator().manual_seed(self.config.seed * 1_000_003 + view.call_index)
        scores = torch.rand(view.num_visual, generator=generator).to(view.visual_valid.device)
        scores = scores[None, :].expand_as(view.visual_valid)
        return top_k(scores, view.visual_valid, view.budget(self.config.keep_ratio))
