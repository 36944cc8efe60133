"""`TokenSelection` and the tensor primitives every strategy shares (budgets, stable top-k)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class TokenSelection:
    """The visual tokens one call keeps, per sample.

    Rows may keep different counts (cameras missing in some samples); the tensor is padded to the
    largest count and `valid` marks real entries. Real entries come first, in ascending order.

    Attributes:
        keep_idx: `[B, K]` long, indices into the visual-token axis (camera blocks in prefix order).
        valid: `[B, K]` bool, False for padding slots (their `keep_idx` is 0 and must be ignored).
    """

    keep_idx: Tensor
    valid: Tensor

    @property
    def counts(self) -> Tensor:
        """`[B]` number of kept tokens per sample."""
        return self.valid.sum(dim=1)

    def keep_mask(self, num_visual: int) -> Tensor:
        """`[B, M]` bool: True for kept visual tokens."""
        hits = torch.zeros(self.keep_idx.shape[0], num_visual, dtype=torch.long, device=self.keep_idx.device)
        return hits.scatter_add(1, self.keep_idx, self.valid.long()) > 0


def keep_budget(valid: Tensor, keep_ratio: float) -> Tensor:
    """Per-sample budget `M~ = max(1, round(rho * M_v))` (Python's half-to-even rounding).

    Args:
        valid: `[B, M]` bool, selectable visual tokens.
    Returns:
        `[B]` long; 0 for a sample with no valid visual token.
    """
    num_valid = valid.sum(dim=1)
    budget = torch.round(num_valid.double() * keep_ratio).long().clamp(min=1)
    return torch.minimum(budget, num_valid)


def top_k(scores: Tensor, valid: Tensor, budget: Tensor, k_max: int | None = None) -> TokenSelection:
    """Keeps the `budget[b]` highest-scoring valid tokens of each row (methods_spec P1).

    Ties go to the lower index (stable descending sort). Invalid tokens are never selected.

    Args:
        scores: `[B, M]` float (compared in float32, or in float64 when given float64).
        valid: `[B, M]` bool.
        budget: `[B]` long, at most the number of valid tokens of the row.
        k_max: width of the result; defaults to `budget.max()` (one host sync).
    """
    if k_max is None:
        k_max = int(budget.max())
    masked = (scores if scores.dtype == torch.float64 else scores.float()).masked_fill(~valid, float("-inf"))
    order = torch.sort(masked, dim=1, descending=True, stable=True).indices[:, :k_max]
    return indices_to_selection(order, budget, num_visual=scores.shape[1])


def indices_to_selection(chosen: Tensor, budget: Tensor, num_visual: int) -> TokenSelection:
    """Turns per-row chosen indices (first `budget[b]` entries real, any order) into a `TokenSelection`.

    Args:
        chosen: `[B, K]` long.
        budget: `[B]` long.
    """
    k_max = chosen.shape[1]
    slot_valid = torch.arange(k_max, device=chosen.device)[None, :] < budget[:, None]
    # Sort real entries ascending and push padding slots to the end.
    sort_key = chosen.masked_fill(~slot_valid, num_visual)
    keep_idx = torch.sort(sort_key, dim=1).values
    return TokenSelection(keep_idx=keep_idx.masked_fill(~slot_valid, 0), valid=slot_valid)
