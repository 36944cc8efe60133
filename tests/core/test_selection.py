"""Budgets, stable top-k and the strategy contract on a synthetic view (no model)."""

import torch

from lerobot_prune.flops import LayerDims, layer_flops
from lerobot_prune.selection import keep_budget, top_k


def test_budget_rounds_half_to_even_and_never_below_one():
    valid = torch.zeros(4, 10, dtype=torch.bool)
    for row, n in enumerate([10, 5, 1, 0]):
        valid[row, :n] = True
    assert keep_budget(valid, 0.25).tolist() == [2, 1, 1, 0]  # round(2.5)=2, round(1.25)=1, max(1, .25)
    assert keep_budget(valid, 0.5).tolist() == [5, 2, 1, 0]  # round(2.5)=2


def test_top_k_breaks_ties_by_lower_index_and_skips_invalid():
    scores = torch.tensor([[1.0, 3.0, 3.0, 0.5, 3.0], [9.0, 1.0, 2.0, 3.0, 4.0]])
    valid = torch.tensor([[True] * 5, [False, True, True, True, True]])
    sel = top_k(scores, valid, torch.tensor([2, 3]))
    assert sel.keep_idx.tolist() == [[1, 2, 0], [2, 3, 4]]
    assert sel.valid.tolist() == [[True, True, False], [True, True, True]]
    assert sel.keep_mask(5).tolist() == [[False, True, True, False, False], [False, False, True, True, True]]


def test_layer_flops_shrink_with_tokens():
    d = LayerDims(width=2048, mlp_dim=16384, num_heads=8, num_kv_heads=1, head_dim=256)
    assert layer_flops(d, 816, 816) > 2 * layer_flops(d, 240, 240)
    assert layer_flops(d, 51, 867) > layer_flops(d, 51, 291)
