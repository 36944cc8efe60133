"""`ties`: trust the attention ranking only when layers disagree about it (methods_spec §4); its offline
statistics are in `ties_calibration.py`, the rank-selection baselines it compares against in `ties_ranks.py`.

Per call, for the tokens' attention column sums at layer K-1: `floor(w * M~)` come from the top of the
ranking, the rest are sampled uniformly over the remaining ranks (or by DivPrune). The trust weight `w`
comes from the Kendall τ of the ranking across consecutive layers on an anchor frame, compared with
offline calibration statistics; a new anchor is taken when the frame drifts from the old one.

Training (`select_for_training`): the anchor frame and its trust weight belong to an episode, so a
training batch of independent frames uses full trust, the top-k of the current attention at layer K-1
(the `ties_topk` rule); no calibration is needed and the anchor state is neither read nor written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from ..config import KeepRatioConfig, check_choice, check_prune_layer, check_range
from ..ops import max_min_diversity, uniform_rank_sample
from ..registry import register_strategy
from ..selection import TokenSelection, indices_to_selection
from .base import PruningView, TokenPruner
from .ties_calibration import (
    CALIBRATION_FILENAME,
    CALIBRATION_VERSION,
    SYNTHETIC_STATS,
    TAU_ITEMS,
    calibration_record,  # noqa: F401  (re-exported: its import path before the split)
    frame_tau,
    trust_weight,
)

TRUST_RULES = ("soft", "hard")
SUPPLEMENTS = ("uniform", "divprune")


@dataclass
class TIESConfig(KeepRatioConfig):
    """Args:
    keep_ratio: Fraction kept ([DECISION] 56/256 = 0.219 as in the paper's main results).
    layer: K ([DECISION] 2: "from the second Transformer layer"; 1 = the literal reading).
    trust: "soft" (Soft-TIES, interpolated trust) or "hard" (Hard-TIES, all top-k or all supplement).
    supplement: how the untrusted share is filled: "uniform" rank sampling or "divprune".
    similarity_threshold: γ_sim; a frame whose mean token cosine to the anchor drops below it re-anchors.
    tau_items: items compared by τ: "top_earlier" (the earlier layer's top-k) or "union" of both top-k.
    calibration_path: τ statistics JSON; default: `ties_calibration.json` next to the checkpoint.
    """

    keep_ratio: float = 0.219
    layer: int = 2
    trust: str = "soft"
    supplement: str = "uniform"
    similarity_threshold: float = 0.90
    tau_items: str = "top_earlier"
    calibration_path: str | None = None
    summary = "TIES: top-k when layers' attention rankings disagree (low Kendall τ), else uniform sampling."
    needs_calibration = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("pruning.trust", self.trust, TRUST_RULES)
        check_choice("pruning.supplement", self.supplement, SUPPLEMENTS)
        check_choice("pruning.tau_items", self.tau_items, TAU_ITEMS)
        check_range("pruning.similarity_threshold", self.similarity_threshold, -1.0, 1.0, low_open=False)

    def validate_for_model(self, vlm_depth: int) -> None:
        check_prune_layer(self.layer, vlm_depth)


def ranked(scores: Tensor, valid: Tensor) -> Tensor:
    """`[B, M]` token indices by score, descending (ties: lower index first); invalid tokens last."""
    return torch.sort(
        scores.float().masked_fill(~valid, float("-inf")), dim=1, descending=True, stable=True
    ).indices


def take_ranks(order: Tensor, start: Tensor, width: int) -> Tensor:
    """`[B, width]` entries `order[b, start[b] + i]` (clamped at the end)."""
    positions = (start[:, None] + torch.arange(width, device=order.device)[None, :]).clamp(
        max=order.shape[1] - 1
    )
    return order.gather(1, positions)


@register_strategy("ties", TIESConfig)
class TIESPruner(TokenPruner):
    """Per-episode state: the anchor frame's embeddings and the trust weight per batch row."""

    stage = "in_llm"
    needs_full_grid = True  # the anchor frame is stored per grid position
    signals = frozenset({"attention_to_visual", "visual_embeds"})
    training_diagnostics = {"trust_weight": 1.0}  # training uses full trust

    def __init__(self, config: TIESConfig):
        super().__init__(config)
        self.stats: dict | None = None
        self.reset()

    def reset(self) -> None:
        self.anchor: Tensor | None = None  # [B, num_cams * 256, D]
        self.trust: Tensor | None = None  # [B]
        self._anchoring: Tensor | None = None
        self._similarity: Tensor | None = None
        self._taus: list[float | None] = []

    def bind(self, policy_config, checkpoint_dir=None, backbone: dict | None = None) -> None:
        path = Path(self.config.calibration_path) if self.config.calibration_path else None
        if path is None and checkpoint_dir is not None:
            path = Path(checkpoint_dir) / CALIBRATION_FILENAME
        if path is not None and path.is_file():
            self.load_calibration(json.loads(path.read_text()), backbone, source=str(path))
        elif self.config.calibration_path:
            raise FileNotFoundError(
                f"pruning.calibration_path={self.config.calibration_path} does not exist."
            )

    def load_calibration(self, stats: dict, backbone: dict | None = None, source: str = "statistics") -> None:
        expected = {
            "version": CALIBRATION_VERSION,
            "layer": self.config.layer,
            "keep_ratio": self.config.keep_ratio,
        }
        if backbone is not None:
            expected["backbone"] = backbone
        if wrong := {k: (stats.get(k), v) for k, v in expected.items() if stats.get(k) != v}:
            details = ", ".join(
                f"{k}: calibrated {got!r}, policy {want!r}" for k, (got, want) in wrong.items()
            )
            raise ValueError(
                f"TIES calibration {source} does not match this policy ({details}); recalibrate."
            )
        self.stats = stats

    def synthetic_calibration(self) -> dict:
        """`SYNTHETIC_STATS` matching this config (for `load_calibration`; never for a real evaluation)."""
        return {**SYNTHETIC_STATS, "layer": self.config.layer, "keep_ratio": self.config.keep_ratio}

    def check_ready(self) -> None:
        if self.stats is None:
            raise RuntimeError(
                "TIES needs τ calibration statistics and none were found. Compute them once per task domain: "
                "`lerobot-prune calibrate --policy_path=<checkpoint> --dataset_root=<local LeRobot dataset>` "
                "(or --env_type=<sim>); they are saved as ties_calibration.json next to the checkpoint. "
                "Or point pruning.calibration_path at such a file."
            )

    def prepare(self, view: PruningView) -> None:
        embeds = view.signals.visual_embeds().float()
        batch = embeds.shape[0]
        if self.anchor is None or self.anchor.shape[0] != batch:
            self.reset()
            self._anchoring = torch.ones(batch, dtype=torch.bool, device=embeds.device)
        else:
            cosine = F.cosine_similarity(embeds, self.anchor[:, view.visual_index], dim=-1)
            valid = view.visual_valid.float()
            self._similarity = (cosine * valid).sum(1) / valid.sum(1).clamp(min=1)
            self._anchoring = self._similarity < self.config.similarity_threshold
        self._any_anchor = bool(self._anchoring.any())
        self._all_anchor = self._any_anchor and bool(self._anchoring.all())
        if self._any_anchor:
            view.signals.capture_layers(range(view.vlm_depth))

    def select(self, view: PruningView) -> TokenSelection | None:
        if self._all_anchor:
            return None
        valid = view.visual_valid
        order = ranked(view.signals.attention_to_visual("all"), valid)
        budget, bound = self.budget(view)
        trust = self.trust if self.trust is not None else torch.ones_like(budget, dtype=torch.float)
        num_top = torch.floor(trust * budget).long()
        chosen = self.combine(view, order, budget, num_top, bound)
        if not self._any_anchor:
            return indices_to_selection(chosen, budget, view.num_visual)
        chosen = F.pad(chosen, (0, view.num_visual - bound))
        chosen = torch.where(self._anchoring[:, None], order, chosen)
        return indices_to_selection(
            chosen, torch.where(self._anchoring, valid.sum(1), budget), view.num_visual
        )

    def select_for_training(self, view: PruningView) -> TokenSelection:
        order = ranked(view.signals.attention_to_visual("all"), view.visual_valid)
        budget, bound = self.budget(view)
        return indices_to_selection(order[:, :bound], budget, view.num_visual)

    def combine(
        self, view: PruningView, order: Tensor, budget: Tensor, num_top: Tensor, bound: int
    ) -> Tensor:
        """`[B, bound]`: the `num_top` best-ranked tokens, then `budget - num_top` supplement tokens."""
        slot = torch.arange(bound, device=order.device)[None, :]
        top = order[:, :bound]
        num_rest = budget - num_top
        if self.config.supplement == "uniform":
            remaining = take_ranks(order, num_top, order.shape[1])
            rest = uniform_rank_sample(remaining, view.visual_valid.sum(1) - num_top, num_rest, bound)
        else:
            top_mask = torch.zeros_like(view.visual_valid).scatter(1, top, slot < num_top[:, None])
            candidates = view.visual_valid & ~top_mask
            rest = max_min_diversity(view.signals.visual_embeds(), candidates, num_rest, bound)
        rest = rest.gather(1, (slot - num_top[:, None]).clamp(min=0))
        return torch.where(slot < num_top[:, None], top, rest)

    def observe(self, view: PruningView, selection: TokenSelection | None) -> None:
        self._taus = [None] * view.visual_valid.shape[0]
        if self._any_anchor:
            self._record_anchor(view)

    @torch.compiler.disable
    def _record_anchor(self, view: PruningView) -> None:
        """τ, trust weight and anchor embeddings of the re-anchored rows. Runs on anchor frames only and
        reads τ on the host per row, so it stays out of torch.compile (its guards would specialise on τ)."""
        columns = torch.stack(
            [view.signals.attention_to_visual("all", layer=layer) for layer in range(view.vlm_depth)], dim=1
        )  # [B, L, M]
        budget = view.budget(self.config.keep_ratio).tolist()
        embeds = view.signals.visual_embeds().float()
        if self.anchor is None:
            self.anchor = embeds.new_zeros(embeds.shape[0], view.full_visual, embeds.shape[2])
            self.trust = torch.ones(embeds.shape[0], device=embeds.device)
        for row in self._anchoring.nonzero().squeeze(1).tolist():
            tau = frame_tau(columns[row], view.visual_valid[row], max(budget[row], 2), self.config.tau_items)
            self._taus[row] = tau
            self.trust[row] = trust_weight(tau, self.stats, self.config.trust)
            self.anchor[row] = 0.0
            self.anchor[row, view.visual_index] = embeds[row]

    def diagnostics(self) -> dict:
        return {
            "tau": list(self._taus),
            "trust_weight": self.trust.tolist() if self.trust is not None else None,
            "reanchored": self._anchoring,
            "similarity": self._similarity,
        }
