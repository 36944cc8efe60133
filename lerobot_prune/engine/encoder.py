"""Visual-token selection inside the vision encoder (`pruning.encoder`), written once for every family.

VisionTower    what a family exposes of its tower: patch and position embeddings, layers, the q/k of a
               layer, and the per-token finish (post-norm, projector/connector).
CarryOver      per-episode state of "carry_over": the last refresh call's kept set and the call count.
encode_full    every patch through the tower (LeRobot's per-camera loop, or one packed call).
encode_carried only the carried patches, all cameras packed into one sequence per row.
encode_in_encoder  every patch through the first `encoder_layer` layers, then each camera's most-attended
               patches only.

Patches and visual tokens: a visual token is `patches_per_token` consecutive patches in the order the
family's `token_patches` lists them (SigLIP: one patch; SmolVLM: the 4x4 block behind a pixel-shuffled
token), so a kept token set maps to a patch set and back without knowing the grid.
"""

from __future__ import annotations

import abc
import contextlib
from dataclasses import dataclass

import torch
from torch import Tensor

from ..selection import TokenSelection


class VisionTower(abc.ABC):
    """A family's vision tower, layer by layer (only upstream modules are called).

    Attributes:
        depth: number of tower layers.
        token_patches: `[T, P]` long, the patches (raster index in the camera's patch grid) behind each
            visual token of a camera, in the order `finish` expects them.
        dtype: `vision_dtype` to autocast the tower to, or None (as upstream).
    """

    depth: int
    token_patches: Tensor
    dtype: torch.dtype | None = None

    @property
    def patches_per_token(self) -> int:
        return self.token_patches.shape[1]

    @abc.abstractmethod
    def patch_embeds(self, images: Tensor) -> Tensor:
        """`[B, N, D]` patch-convolution outputs of `[B, 3, H, W]` images, raster order, no positions."""

    @abc.abstractmethod
    def position_embeds(self) -> Tensor:
        """`[N, D]` position embedding of each patch."""

    @abc.abstractmethod
    def run_layer(self, index: int, hidden: Tensor, mask: Tensor | None) -> Tensor:
        """Tower layer `index` on `[B, S, D]`; `mask` is `[B, 1, S, S]` additive, or None for full attention."""

    @abc.abstractmethod
    def query_key(self, index: int, hidden: Tensor) -> tuple[Tensor, Tensor, float]:
        """(`[B, H, S, d]` queries, `[B, H, S, d]` keys, scale) of layer `index`'s attention on its input."""

    @abc.abstractmethod
    def finish(self, hidden: Tensor) -> Tensor:
        """`[B, K, D_llm]` visual tokens from `[B, K * P, D]` last-layer outputs (P patches per token)."""

    @abc.abstractmethod
    def upstream(self, images: list[Tensor]) -> list[Tensor]:
        """The family's own per-camera image embedding (`[B, T, D_llm]` per camera), unmodified."""

    def autocast(self, device: torch.device):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=self.dtype)


@dataclass
class EncodedVision:
    """The visual part of the prefix an encoder mode produced.

    Attributes:
        tokens: `[B, M, D_llm]` visual tokens.
        visual_index: `[B, M]` long, index of each token among all `C * T` visual tokens.
        camera_ids: `[M]` long, camera of each token.
        patches: `[B, depth, C]` long, real patches of each camera that entered each tower layer.
    """

    tokens: Tensor
    visual_index: Tensor
    camera_ids: Tensor
    patches: Tensor


class CarryOver:
    """The kept visual set of the last refresh call, reused until the next refresh (per episode)."""

    def __init__(self, refresh: int):
        self.refresh = refresh
        self.calls = 0
        self.kept: TokenSelection | None = None  # over all C * T visual tokens

    def reset(self) -> None:
        self.calls, self.kept = 0, None

    def is_refresh(self, batch: int) -> bool:
        """Whether this call runs the full tower and the strategy (also when no set fits this batch)."""
        return self.calls % self.refresh == 0 or self.kept is None or self.kept.keep_idx.shape[0] != batch

    def store(self, selection: TokenSelection | None, visual_index: Tensor) -> None:
        """Records a refresh call's final selection (`[B, K]` over the view's visual columns)."""
        if selection is None:
            self.kept = None
            return
        index = visual_index.expand(selection.keep_idx.shape[0], -1)
        self.kept = TokenSelection(index.gather(1, selection.keep_idx), selection.valid)

    def advance(self) -> None:
        self.calls += 1


def full_patch_counts(batch: int, depth: int, num_cameras: int, patches: int, device) -> Tensor:
    return torch.full((batch, depth, num_cameras), patches, dtype=torch.long, device=device)


def encode_full(tower: VisionTower, images: list[Tensor], pack: bool) -> list[Tensor]:
    """`[B, T, D_llm]` per camera: the upstream loop, or (`pack`) every camera in one batched tower call."""
    if not pack:
        with tower.autocast(images[0].device):
            return tower.upstream(images)
    batch = images[0].shape[0]
    with tower.autocast(images[0].device):
        hidden = tower.patch_embeds(torch.cat(images)) + tower.position_embeds()
        for index in range(tower.depth):
            hidden = tower.run_layer(index, hidden, None)
        tokens = tower.finish(hidden[:, tower.token_patches.flatten()])
    return list(tokens.split(batch))


def encode_carried(tower: VisionTower, images: list[Tensor], kept: TokenSelection) -> EncodedVision:
    """The carried tokens only: their patches (with their positions) of every camera packed into one
    sequence per row, attending within their own camera; padding slots attend to nothing real.

    `kept`: `[B, K]` over all `C * T` visual tokens. Returns `K` tokens per row, in `kept`'s order.
    """
    num_cameras, per_token = len(images), tower.patches_per_token
    tokens_per_camera = tower.token_patches.shape[0]
    camera = kept.keep_idx // tokens_per_camera  # [B, K]
    patch = tower.token_patches[kept.keep_idx % tokens_per_camera]  # [B, K, P]
    with tower.autocast(images[0].device):
        grids = torch.stack([tower.patch_embeds(image) for image in images], dim=1)  # [B, C, N, D]
        num_patches = grids.shape[2]
        flat = (camera[..., None] * num_patches + patch).flatten(1)  # [B, K * P]
        hidden = grids.flatten(1, 2).gather(1, flat[..., None].expand(-1, -1, grids.shape[-1]))
        hidden = hidden + tower.position_embeds()[patch.flatten(1)]
        slot_camera = camera.masked_fill(~kept.valid, -1).repeat_interleave(per_token, dim=1)
        same = (slot_camera[:, :, None] == slot_camera[:, None, :]) & (slot_camera >= 0)[:, None, :]
        mask = additive_mask(same, hidden.dtype)
        for index in range(tower.depth):
            hidden = tower.run_layer(index, hidden, mask)
        tokens = tower.finish(hidden)
    counts = torch.zeros(camera.shape[0], num_cameras, dtype=torch.long, device=camera.device)
    counts = counts.scatter_add(1, camera, kept.valid.long() * per_token)
    return EncodedVision(
        tokens=tokens,
        visual_index=kept.keep_idx,
        camera_ids=torch.arange(num_cameras, device=camera.device),  # unused: rows differ
        patches=counts[:, None].expand(-1, tower.depth, -1),
    )


def encode_in_encoder(tower: VisionTower, images: list[Tensor], layer: int, keep_ratio: float,
                      pack: bool) -> EncodedVision:  # fmt: skip
    """Layers `[0, layer)` on every patch; each camera keeps its `keep_ratio` visual tokens whose patches
    receive the most attention in layer `layer - 1`; layers `[layer, depth)` run on those patches only.

    Every camera keeps the same count `k = max(1, round(keep_ratio * T))`, so shapes are static and rows
    stay independent. Returns `C * k` tokens per row, camera by camera, ascending visual index.
    """
    batch, num_cameras = images[0].shape[0], len(images)
    tokens_per_camera, per_token = tower.token_patches.shape
    keep = max(1, round(keep_ratio * tokens_per_camera))
    groups = [torch.cat(images)] if pack else images
    kept_tokens, kept_index = [], []
    with tower.autocast(images[0].device):
        for group in groups:
            hidden = tower.patch_embeds(group) + tower.position_embeds()
            for index in range(layer - 1):
                hidden = tower.run_layer(index, hidden, None)
            received = attention_received(*tower.query_key(layer - 1, hidden))  # [G, N]
            hidden = tower.run_layer(layer - 1, hidden, None)
            score = received[:, tower.token_patches].mean(dim=2)  # [G, T]
            chosen = torch.sort(torch.topk(score, keep, dim=1, sorted=False).indices, dim=1).values
            patch = tower.token_patches[chosen].flatten(1)  # [G, k * P]
            hidden = hidden.gather(1, patch[..., None].expand(-1, -1, hidden.shape[-1]))
            for index in range(layer, tower.depth):
                hidden = tower.run_layer(index, hidden, None)
            kept_tokens.append(tower.finish(hidden))
            kept_index.append(chosen)
    tokens = torch.cat(kept_tokens).split(batch)
    chosen = torch.cat(kept_index).split(batch)
    device = images[0].device
    offsets = torch.arange(num_cameras, device=device).repeat_interleave(keep) * tokens_per_camera
    patches = [tower.token_patches.shape[0] * per_token] * layer + [keep * per_token] * (tower.depth - layer)
    return EncodedVision(
        tokens=torch.cat(tokens, dim=1),
        visual_index=torch.cat(chosen, dim=1) + offsets,
        camera_ids=torch.arange(num_cameras, device=device).repeat_interleave(keep),
        patches=torch.tensor(patches, device=device)[None, :, None].expand(batch, -1, num_cameras),
    )


def attention_received(queries: Tensor, keys: Tensor, scale: float) -> Tensor:
    """`[B, S]` float32 softmax attention each key receives, mean over heads and queries."""
    logits = torch.einsum("bhqd,bhkd->bhqk", queries.float(), keys.float()) * scale
    return logits.softmax(dim=-1).mean(dim=(1, 2))


def additive_mask(allowed: Tensor, dtype: torch.dtype) -> Tensor:
    """`[B, 1, S, S]` additive attention mask from `[B, S, S]` bool (True = may attend)."""
    mask = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
    return mask.masked_fill(~allowed, torch.finfo(dtype).min)[:, None]


def uses_tower(config) -> bool:
    """Whether `config` changes how the vision tower runs (else the family's own embedding runs)."""
    return config.encoder != "off" or config.pack_cameras or config.vision_dtype is not None
