"""`sparsevlm`: text raters chosen on embeddings, their attention at layer K-1 (methods_spec §2.4).

The single-layer variant the VLA-Pruner repository uses as its SparseVLM baseline (no progressive
pruning, no token recycling).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..config import KeepRatioConfig, check_prune_layer
from ..registry import register_strategy
from .base import PruningView, TopKScorer


@dataclass
class SparseVLMConfig(KeepRatioConfig):
    """Args:
    keep_ratio: Fraction of valid visual tokens kept.
    layer: K; scores come from layer K-1 (VLA-Pruner repo: 3).
    """

    keep_ratio: float = 0.5
    layer: int = 3
    summary = "SparseVLM (VLA-Pruner repo variant): attention of relevant text 'raters' at layer K-1."

    def validate_for_model(self, vlm_depth: int) -> None:
        check_prune_layer(self.layer, vlm_depth)


def rater_weights(visual: Tensor, visual_valid: Tensor, text: Tensor, text_valid: Tensor) -> Tensor:
    """`[B, N]` float 0/1: the rater text tokens.

    Candidates are the valid language tokens without the first and the last one (the repo's text range);
    `r_t = mean_v softmax_t(h_v . h_t)`; raters are the candidates with `r_t >= mean(r)`.

    Args:
        visual: `[B, M, D]` layer-0 visual embeddings; visual_valid `[B, M]`.
        text: `[B, N, D]` layer-0 language embeddings; text_valid `[B, N]` (right-padded prompts).
    """
    position = torch.arange(text.shape[1], device=text.device)[None, :]
    pool = text_valid & (position >= 1) & (position < text_valid.sum(1, keepdim=True) - 1)
    pool = torch.where(pool.any(dim=1, keepdim=True), pool, text_valid)
    logits = torch.einsum("bmd,bnd->bmn", visual.float(), text.float())
    probs = torch.softmax(logits.masked_fill(~pool[:, None, :], float("-inf")), dim=-1).nan_to_num(0.0)
    weight = visual_valid.float()[..., None]
    relevance = (probs * weight).sum(1) / weight.sum(1).clamp(min=1)  # [B, N]
    mean = (relevance * pool).sum(1, keepdim=True) / pool.sum(1, keepdim=True).clamp(min=1)
    return (pool & (relevance >= mean)).float()


@register_strategy("sparsevlm", SparseVLMConfig)
class SparseVLMPruner(TopKScorer):
    stage = "in_llm"
    signals = frozenset({"visual_embeds", "text_embeds", "attention_to_visual"})

    def score(self, view: PruningView) -> Tensor:
        text, text_valid = view.signals.text_embeds()
        raters = rater_weights(view.signals.visual_embeds(), view.visual_valid, text, text_valid)
        return view.signals.attention_to_visual(raters)
