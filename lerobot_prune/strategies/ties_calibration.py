"""TIES's offline statistics (methods_spec §4.3, §4.4): the Kendall τ of a frame's attention ranking across
consecutive layers, the trust weight a τ maps to, and the JSON `lerobot-prune calibrate` saves."""

from __future__ import annotations

import torch
from torch import Tensor

from ..ops import kendall_tau_b

CALIBRATION_FILENAME = "ties_calibration.json"
CALIBRATION_VERSION = 1
# Placeholder τ statistics for runs without a calibration dataset (bench, tests): Soft-TIES trust 0.5 at τ=0.
SYNTHETIC_STATS = {"version": CALIBRATION_VERSION, "tau_median": 0.0, "tau_p5": -0.1, "tau_p95": 0.1}
TAU_ITEMS = ("top_earlier", "union")


def frame_tau(columns: Tensor, valid: Tensor, k: int, items: str = "top_earlier") -> float:
    """Mean Kendall τ_b of the attention ranking between consecutive layers (§4.3).

    Args:
        columns: `[L, M]` attention column scores of one frame at every VLM layer.
        valid: `[M]` bool. k: k_τ, the size of each layer's top set.
    """
    masked = columns.float().masked_fill(~valid, float("-inf"))
    order = torch.sort(masked, dim=1, descending=True, stable=True).indices[:, :k]  # [L, k]
    if items == "top_earlier":
        earlier = columns[:-1].gather(1, order[:-1])
        later = columns[1:].gather(1, order[:-1])
        return float(kendall_tau_b(earlier, later).mean())
    taus = []
    for layer in range(columns.shape[0] - 1):
        union = torch.unique(torch.cat([order[layer], order[layer + 1]]))
        taus.append(kendall_tau_b(columns[layer, union], columns[layer + 1, union]))
    return float(torch.stack(taus).mean())


def trust_weight(tau: float, stats: dict, rule: str) -> float:
    """w(τ): Hard-TIES 1 below τ_med, 0 above; Soft-TIES piecewise linear through
    (P5, 1), (median, 0.5), (P95, 0) ([DECISION] T3)."""
    low, median, high = stats["tau_p5"], stats["tau_median"], stats["tau_p95"]
    if rule == "hard":
        return 0.0 if tau > median else 1.0
    if tau <= low:
        return 1.0
    if tau >= high:
        return 0.0
    if tau <= median:
        return 1.0 - 0.5 * (tau - low) / max(median - low, 1e-12)
    return 0.5 - 0.5 * (tau - median) / max(high - median, 1e-12)


def calibration_record(taus: list[float], backbone: dict, layer: int, keep_ratio: float, source: str) -> dict:
    """The JSON saved next to a checkpoint by `lerobot-prune calibrate` (§4.4)."""
    ordered = sorted(taus)

    def quantile(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]

    return {
        "version": CALIBRATION_VERSION,
        "backbone": backbone,
        "layer": layer,
        "k_tau": "budget",
        "keep_ratio": keep_ratio,
        "frames": len(taus),
        "source": source,
        "tau_median": quantile(0.5),
        "tau_p5": quantile(0.05),
        "tau_p95": quantile(0.95),
        "taus": taus,
    }
