from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.ndimage
import scipy.stats
import torch

from lerobot_prune.ops import (
    gaussian_kernel,
    gaussian_smooth_grid,
    kendall_tau_b,
    max_min_diversity,
    suppress_corners,
    uniform_rank_sample,
)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
ANGLES = [0.0, 10.0, 20.0, 30.0, 90.0, 90.0, 170.0]


def on_circle(degrees: list[float]) -> torch.Tensor:
    """Unit vectors at the given angles: `[1, N, 2]`; cosine distance is monotone in the angle gap."""
    rad = torch.tensor(degrees, dtype=torch.float64) * math.pi / 180
    return torch.stack([rad.cos(), rad.sin()], dim=-1).float()[None]


def pick(features, valid=None, count=None, k_max=None, device="cpu"):
    n = features.shape[1]
    valid = torch.ones(1, n, dtype=torch.bool) if valid is None else valid
    k_max = n if k_max is None else k_max
    count = torch.full((features.shape[0],), k_max) if count is None else count
    out = max_min_diversity(features.to(device), valid.to(device), count.to(device), k_max)
    assert out.dtype == torch.long and out.shape == (features.shape[0], k_max)
    return out.cpu()


@pytest.mark.parametrize("device", DEVICES)
def test_max_min_golden_pick_order(device):
    # nearest-neighbour gaps: 10, 10, 10, 10, 0, 0, 80 -> 170 first; then 0 (170 away), 90 (80 away;
    # tie with its duplicate, lower index wins), then 30 (30 away from 0 vs 20 and 10).
    assert pick(on_circle(ANGLES), k_max=4, device=device)[0].tolist() == [6, 0, 4, 3]


def test_max_min_first_pick_is_most_isolated():
    assert pick(on_circle([0.0, 5.0, 100.0, 50.0, 45.0]), k_max=1)[0].tolist() == [2]


def test_max_min_duplicate_only_when_forced():
    six = pick(on_circle(ANGLES), k_max=6)[0].tolist()
    assert sorted(six) == [0, 1, 2, 3, 4, 6]
    everything = pick(on_circle(ANGLES))[0].tolist()
    assert sorted(everything) == list(range(len(ANGLES)))
    assert everything[-1] == 5


def test_max_min_k_equals_n_returns_each_index_once():
    torch.manual_seed(0)
    features = torch.randn(1, 12, 8)
    features[0, 7] = features[0, 3]
    out = pick(features)[0].tolist()
    assert sorted(out) == list(range(12))


def test_max_min_never_picks_invalid():
    gen = torch.Generator().manual_seed(1)
    features = torch.randn(4, 20, 6, generator=gen)
    valid = torch.rand(4, 20, generator=gen) < 0.5
    valid[:, 0] = True
    count = valid.sum(-1)
    out = max_min_diversity(features, valid, count, 20)
    for b in range(4):
        chosen = out[b, : count[b]].tolist()
        assert len(set(chosen)) == len(chosen) == int(count[b])
        assert all(valid[b, c] for c in chosen)
        assert (out[b, count[b] :] == 0).all()


def test_max_min_batch_matches_single_rows():
    first = on_circle(ANGLES)
    second = on_circle([40.0, 45.0, 120.0, 0.0, 300.0, 200.0, 60.0])
    features = torch.cat([first, second])
    valid = torch.tensor([[True] * 7, [True, False, True, True, False, True, True]])
    count = torch.tensor([4, 2])
    together = max_min_diversity(features, valid, count, 5)
    for b in range(2):
        alone = max_min_diversity(features[b : b + 1], valid[b : b + 1], count[b : b + 1], int(count[b]))
        assert together[b, : count[b]].tolist() == alone[0].tolist()
        assert (together[b, count[b] :] == 0).all()


def test_max_min_lone_candidate_and_zero_count():
    features = on_circle(ANGLES).expand(2, -1, -1)
    valid = torch.zeros(2, 7, dtype=torch.bool)
    valid[0, 3] = True
    valid[1, 2] = True
    out = max_min_diversity(features, valid, torch.tensor([1, 0]), 2)
    assert out.tolist() == [[3, 0], [0, 0]]


def test_max_min_count_above_valid_returns_all_valid():
    valid = torch.tensor([[True, False, True, False, True, False, False]])
    out = pick(on_circle(ANGLES), valid=valid, count=torch.tensor([7]), k_max=7)[0]
    assert sorted(out[:3].tolist()) == [0, 2, 4]
    assert (out[3:] == 0).all()


def test_max_min_accepts_half_precision():
    out = pick(on_circle(ANGLES).to(torch.bfloat16), k_max=4)
    assert out[0, 0].item() == 6


@pytest.mark.parametrize("n", [2, 3, 7, 16, 41])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kendall_matches_scipy_with_ties(n, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 4, (n,), generator=gen).float()
    y = torch.randint(0, 4, (n,), generator=gen).float()
    expected = scipy.stats.kendalltau(x.numpy(), y.numpy()).statistic
    expected = 0.0 if np.isnan(expected) else expected
    got = kendall_tau_b(x, y)
    assert got.dtype == torch.float32 and got.shape == ()
    assert got.item() == pytest.approx(expected, abs=1e-6)


def test_kendall_matches_scipy_without_ties():
    gen = torch.Generator().manual_seed(3)
    x, y = torch.randn(2, 50, generator=gen)
    expected = scipy.stats.kendalltau(x.numpy(), y.numpy()).statistic
    assert kendall_tau_b(x, y).item() == pytest.approx(expected, abs=1e-6)


def test_kendall_batched_matches_elementwise():
    gen = torch.Generator().manual_seed(4)
    x = torch.randint(0, 5, (3, 5, 12), generator=gen).float()
    y = torch.randint(0, 5, (3, 5, 12), generator=gen).float()
    got = kendall_tau_b(x, y)
    assert got.shape == (3, 5)
    for i in range(3):
        for j in range(5):
            expected = scipy.stats.kendalltau(x[i, j].numpy(), y[i, j].numpy()).statistic
            assert got[i, j].item() == pytest.approx(expected, abs=1e-6)


def test_kendall_constant_and_extremes():
    x = torch.arange(6.0)
    assert kendall_tau_b(torch.full((6,), 2.0), x).item() == 0.0
    assert kendall_tau_b(x, torch.full((6,), 2.0)).item() == 0.0
    assert kendall_tau_b(x, x).item() == pytest.approx(1.0)
    assert kendall_tau_b(x, -x).item() == pytest.approx(-1.0)


def test_uniform_rank_sample_strata():
    order = torch.arange(100, 110)[None]
    out = uniform_rank_sample(order, torch.tensor([10]), torch.tensor([3]), 3)
    assert out.tolist() == [[101, 105, 108]]


def test_uniform_rank_sample_full_count_is_identity_and_zero_count_is_empty():
    order = torch.stack([torch.arange(10).flip(0), torch.arange(10)])
    out = uniform_rank_sample(order, torch.tensor([10, 10]), torch.tensor([10, 0]), 10)
    assert out[0].tolist() == order[0].tolist()
    assert out[1].tolist() == [0] * 10


def test_uniform_rank_sample_uses_real_candidates_only():
    order = torch.tensor([[7, 3, 9, 1, 5, 0, 0, 0]])
    out = uniform_rank_sample(order, torch.tensor([5]), torch.tensor([2]), 4)
    # floor(0.5 * 5 / 2) = 1, floor(1.5 * 5 / 2) = 3
    assert out.tolist() == [[3, 1, 0, 0]]


def scipy_smooth(scores: torch.Tensor, grid: int, sigma: float, size: int) -> np.ndarray:
    weights = gaussian_kernel(sigma, size).double().numpy()
    img = scores.double().numpy().reshape(-1, grid, grid)
    img = scipy.ndimage.correlate1d(img, weights, axis=2, mode="mirror")
    img = scipy.ndimage.correlate1d(img, weights, axis=1, mode="mirror")
    return img.reshape(-1, grid * grid)


@pytest.mark.parametrize(("grid", "sigma", "size"), [(4, 1.0, 3), (7, 0.7, 5), (16, 2.0, 3)])
def test_gaussian_matches_scipy_mirror(grid, sigma, size):
    scores = torch.rand(2, grid * grid, generator=torch.Generator().manual_seed(grid))
    got = gaussian_smooth_grid(scores, grid, sigma, size)
    assert got.dtype == torch.float32 and got.shape == (2, grid * grid)
    np.testing.assert_allclose(got.numpy(), scipy_smooth(scores, grid, sigma, size), atol=1e-6)


def test_gaussian_kernel_is_normalised_and_symmetric():
    taps = gaussian_kernel(1.3, 5)
    assert taps.sum().item() == pytest.approx(1.0)
    assert torch.equal(taps, taps.flip(0))


def test_gaussian_constant_grid_stays_constant():
    out = gaussian_smooth_grid(torch.full((3, 25), 0.25), 5)
    torch.testing.assert_close(out, torch.full((3, 25), 0.25))


def test_gaussian_centre_delta_spreads_symmetrically():
    scores = torch.zeros(1, 49)
    scores[0, 24] = 1.0
    img = gaussian_smooth_grid(scores, 7).reshape(7, 7)
    torch.testing.assert_close(img, img.flip(0))
    torch.testing.assert_close(img, img.flip(1))
    torch.testing.assert_close(img, img.T)
    assert img.sum().item() == pytest.approx(1.0)
    assert img[3, 3] > img[3, 4] > img[2, 4] > 0
    assert img[0].abs().max().item() == 0.0


def test_suppress_corners():
    grid = 4
    scores = torch.rand(3, grid * grid, generator=torch.Generator().manual_seed(5)) + 1.0
    scores[1, 6] = -2.0
    out = suppress_corners(scores, grid)
    corners = [0, grid - 1, grid * (grid - 1), grid * grid - 1]
    others = [q for q in range(grid * grid) if q not in corners]
    assert torch.equal(out[:, corners], scores.amin(-1, keepdim=True).expand(-1, 4))
    assert torch.equal(out[:, others], scores[:, others])
    assert out[1, 0].item() == -2.0
    assert not torch.equal(out, scores)


def test_max_min_diversity_has_no_host_sync_or_graph_break():
    """fullgraph capture fails on `.item()`, `.tolist()`, `nonzero()` or tensor-dependent Python control flow."""
    import torch._dynamo

    from lerobot_prune.ops import max_min_diversity

    torch._dynamo.reset()
    compiled = torch.compile(max_min_diversity, backend="eager", fullgraph=True)
    features = torch.randn(2, 40, 8, generator=torch.Generator().manual_seed(0))
    valid = torch.ones(2, 40, dtype=torch.bool)
    valid[1, 30:] = False
    count = torch.tensor([10, 7])
    assert torch.equal(compiled(features, valid, count, 10), max_min_diversity(features, valid, count, 10))
