"""Pure tensor ops shared by pruning strategies: diversity selection, rank statistics and grid filters.

Every function runs on CPU and CUDA without host synchronisation: loop counts come from python ints,
and per-row sizes are handled with masks, `where`, `gather` and `scatter`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def cosine_distance(features: Tensor) -> Tensor:
    """1 - cosine similarity between all pairs of rows, float32 and exactly symmetric.

    features `[B, N, D]` -> `[B, N, N]`, clamped to `>= 0`.
    """
    unit = F.normalize(features.float(), dim=-1)
    sim = unit @ unit.mT
    sim = 0.5 * (sim + sim.mT)
    return (1.0 - sim).clamp_min(0.0)


def _isolation(dist: Tensor, valid: Tensor) -> Tensor:
    """Nearest-neighbour distance of each valid candidate to the other valid candidates.

    dist `[B, N, N]`, valid `[B, N]` -> `[B, N]`; `+inf` for a lone valid candidate, `-inf` where invalid.
    """
    n = dist.shape[-1]
    eye = torch.eye(n, dtype=torch.bool, device=dist.device)
    others = valid[:, :, None] & ~eye
    nearest = dist.masked_fill(~others, math.inf).amin(dim=1)
    return nearest.masked_fill(~valid, -math.inf)


def max_min_diversity(features: Tensor, valid: Tensor, count: Tensor, k_max: int) -> Tensor:
    """Greedy max-min diversity selection (DivPrune) per batch row, returned in pick order.

    The first pick is the valid candidate whose nearest valid neighbour is farthest; each later pick is the
    valid, not-yet-picked candidate whose distance to the closest picked one is largest (ties: lowest index).

    features `[B, N, D]`, valid `[B, N]` bool, count `[B]` long (clamped to the number of valid candidates),
    k_max python int >= max(count). Returns `[B, k_max]` long: slot t holds the t-th pick for t < count[b],
    0 elsewhere.
    """
    batch, n = valid.shape
    dist = cosine_distance(features)
    count = torch.minimum(count.to(valid.device), valid.sum(dim=-1))
    picks = torch.zeros(batch, k_max, dtype=torch.long, device=valid.device)
    picked = torch.zeros(batch, n, dtype=torch.bool, device=valid.device)
    closest = torch.full((batch, n), math.inf, device=valid.device)
    score = _isolation(dist, valid)
    columns = torch.arange(n, device=valid.device)
    for t in range(k_max):
        if t > 0:
            score = closest.masked_fill(picked | ~valid, -math.inf)
        idx = score.argmax(dim=-1)
        active = count > t
        picks[:, t] = torch.where(active, idx, 0)
        # a comparison, not one_hot, which checks idx's range on the host
        picked = picked | ((columns == idx[:, None]) & active[:, None])
        row = dist.gather(1, idx[:, None, None].expand(batch, 1, n)).squeeze(1)
        closest = torch.minimum(closest, row)
    return picks


def _pairwise_sign(x: Tensor) -> Tensor:
    """sign(x_i - x_j) for all pairs: `[..., n]` -> `[..., n, n]` int8."""
    a, b = x[..., :, None], x[..., None, :]
    return (a > b).to(torch.int8) - (a < b).to(torch.int8)


def kendall_tau_b(x: Tensor, y: Tensor) -> Tensor:
    """Kendall's tau-b of `x` and `y` along the last axis, as `scipy.stats.kendalltau` (variant "b").

    x, y `[..., n]` -> `[...]` float32; 0 where x or y has fewer than two distinct values.
    Every pair is counted twice (i<j and j>i), which leaves the ratio unchanged.
    """
    sx, sy = _pairwise_sign(x), _pairwise_sign(y)
    prod = sx * sy
    dims = (-2, -1)
    concordant = (prod > 0).sum(dims).double()
    discordant = (prod < 0).sum(dims).double()
    tied_x_only = ((sx == 0) & (sy != 0)).sum(dims).double()
    tied_y_only = ((sy == 0) & (sx != 0)).sum(dims).double()
    untied = concordant + discordant
    denom = torch.sqrt((untied + tied_x_only) * (untied + tied_y_only))
    tau = (concordant - discordant) / denom.clamp_min(1.0)
    return torch.where(denom > 0, tau, torch.zeros_like(tau)).float()


def uniform_rank_sample(order: Tensor, num_candidates: Tensor, count: Tensor, k_max: int) -> Tensor:
    """Deterministic rank-stratified sampling (TIES "Uniform").

    order `[B, R]` long (candidates by descending score, the first num_candidates[b] real),
    num_candidates `[B]` long, count `[B]` long <= num_candidates. Returns `[B, k_max]` long whose entry
    i < count[b] is `order[b, floor((i + 0.5) * num_candidates[b] / count[b])]`, 0 elsewhere.
    """
    i = torch.arange(k_max, device=order.device)[None, :]
    total = num_candidates.to(order.device)[:, None]
    n = count.to(order.device)[:, None]
    rank = ((2 * i + 1) * total) // (2 * n.clamp_min(1))
    rank = rank.clamp(0, max(order.shape[1] - 1, 0))
    return torch.where(i < n, order.gather(1, rank), 0)


def gaussian_kernel(sigma: float, size: int) -> Tensor:
    """Normalised 1-D Gaussian taps centred on the middle of `size` taps: `[size]` float32."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    w = torch.exp(-(x**2) / (2 * sigma**2))
    return (w / w.sum()).float()


def gaussian_smooth_grid(scores: Tensor, grid: int, sigma: float = 1.0, size: int = 3) -> Tensor:
    """Separable Gaussian smoothing of per-patch scores on a `grid x grid` raster with reflect padding.

    scores `[B, grid*grid]` (q = row * grid + col) -> `[B, grid*grid]` float32. Reflect padding does not
    repeat the edge (scipy.ndimage mode "mirror"); it needs `size // 2 < grid`.
    """
    batch = scores.shape[0]
    img = scores.float().reshape(batch, 1, grid, grid)
    taps = gaussian_kernel(sigma, size).to(img.device)
    before, after = size // 2, size - 1 - size // 2
    img = F.conv2d(F.pad(img, (before, after, 0, 0), mode="reflect"), taps.view(1, 1, 1, size))
    img = F.conv2d(F.pad(img, (0, 0, before, after), mode="reflect"), taps.view(1, 1, size, 1))
    return img.reshape(batch, grid * grid)


def suppress_corners(scores: Tensor, grid: int) -> Tensor:
    """Copy of `scores` with the four corner cells of the grid set to the row minimum.

    scores `[B, grid*grid]` -> `[B, grid*grid]`.
    """
    corners = torch.tensor(
        [0, grid - 1, grid * (grid - 1), grid * grid - 1], dtype=torch.long, device=scores.device
    )
    corners = corners.expand(scores.shape[0], 4)
    lowest = scores.amin(dim=-1, keepdim=True).expand(-1, 4)
    return scores.scatter(1, corners, lowest)
