"""ADP's multi-view budget (methods_spec §5.3): the tokens each camera keeps and the per-camera top-k.

A camera is present or absent as a whole (`img_masks` are per camera), so a row's valid tokens per camera are
0 or `tokens_per_camera`, and the pattern of present cameras determines its quotas: they are computed once on
the host per pattern (`quota_table`) and looked up on the device, with no host synchronisation and a
selection width known without reading the device.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..selection import TokenSelection, top_k
from .base import PruningView


def split_counts(total: int, weights: list[float]) -> list[int]:
    """Tokens per camera: `max(1, round(total * w / sum(w)))`, then the rounding difference is settled one
    token at a time over the cameras in descending-weight order, never below 1 (ADP `_compute_split_counts`)."""
    norm = sum(weights) or 1.0
    counts = [max(1, round(total * w / norm)) for w in weights]
    order = sorted(range(len(weights)), key=lambda c: -weights[c])
    diff, i = total - sum(counts), 0
    while diff != 0 and i < 4 * len(weights) * (abs(diff) + 1):
        c = order[i % len(order)]
        if diff > 0:
            counts[c], diff = counts[c] + 1, diff - 1
        elif counts[c] > 1:
            counts[c], diff = counts[c] - 1, diff + 1
        i += 1
    return counts


def camera_quotas(cams: list[int], weights: list[float], keep_ratio: float) -> list[int]:
    """Tokens kept per camera of a pruned row with `cams` valid tokens per camera."""
    live = [c for c, count in enumerate(cams) if count > 0]
    if not live:
        return list(cams)
    total = max(1, round(sum(cams) * keep_ratio))
    counts = split_counts(total, [weights[c] for c in live]) if len(live) > 1 else [total]
    budgets = [0] * len(cams)
    for c, n in zip(live, counts, strict=True):
        budgets[c] = min(n, cams[c])
    return budgets


def quota_table(
    num_cameras: int, tokens_per_camera: int, weights: list[float], keep_ratio: float, device
) -> tuple[Tensor, int]:
    """(`[2**C, C]` long quotas of a pruned row per pattern of present cameras, bit c of the pattern index =
    camera c present; the largest row total)."""
    rows = []
    for pattern in range(2**num_cameras):
        cams = [tokens_per_camera if pattern >> c & 1 else 0 for c in range(num_cameras)]
        rows.append(camera_quotas(cams, weights, keep_ratio))
    return torch.tensor(rows, dtype=torch.long, device=device), max(map(sum, rows))


def quota_top_k(
    view: PruningView, scores: Tensor, pruned: list[bool], table: Tensor, widest: int
) -> TokenSelection:
    """Per-camera top-n_c of `scores` (`[B, M]`) for pruned rows, every valid token for the others.

    Args:
        pruned: per batch row, whether it is pruned. table, widest: `quota_table`'s result for the view.
    """
    valid = view.visual_valid
    num_cameras, num_visual = view.num_cameras, view.num_visual
    in_camera = torch.stack([valid & (view.camera_ids == c) for c in range(num_cameras)], dim=1)  # [B, C, M]
    per_camera_valid = in_camera.sum(2)  # [B, C]
    bits = torch.arange(num_cameras, device=valid.device)
    pattern = ((per_camera_valid > 0).long() << bits).sum(1)  # [B], bit c: camera c present
    budgets = torch.minimum(table[pattern], per_camera_valid)
    width = min(widest, num_visual)
    if not all(pruned):
        keep_all = torch.zeros(valid.shape[0], dtype=torch.bool, device=valid.device)
        for row, prunes in enumerate(pruned):
            if not prunes:
                keep_all[row] = True
        budgets = torch.where(keep_all[:, None], per_camera_valid, budgets)
        width = num_visual
    keep = torch.zeros_like(valid)
    per_camera_width = min(num_visual, view.tokens_per_camera)
    for c in range(num_cameras):
        keep |= top_k(scores, in_camera[:, c], budgets[:, c], per_camera_width).keep_mask(num_visual)
    return top_k(keep.float(), keep, budgets.sum(1), width)
