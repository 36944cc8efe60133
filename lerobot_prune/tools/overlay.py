"""Token-keep overlays: which visual tokens a call kept, drawn on the grid over each camera frame.

Backbone-agnostic: it reads only what every pruned policy exposes after a call, `policy.model.last_view`
(`PruningView`), `policy.model.last_selection` (`TokenSelection`), `policy.model.tokens_per_camera` and
`policy.config.image_features`. Each camera frame is letterboxed (centred padding, as π0's
`resize_with_pad`) to a square of `side * cell_px` pixels, where `side**2 = tokens_per_camera` and tokens
are in raster order. Kept tokens are shown as they are, pruned ones darkened and tinted, and tokens that
were never selectable (padded or missing cameras, compacted columns) are nearly black.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor

PRUNED_TINT = np.array([200, 40, 40], dtype=np.float32)


@dataclass(frozen=True)
class OverlayStyle:
    """Args:
    cell_px: Pixels per token cell; a camera frame becomes `side * cell_px` pixels square.
    darken: Brightness kept by pruned tokens (0 = black, 1 = unchanged).
    tint: Weight of the red tint mixed into pruned tokens.
    grid_lines: Draw one-pixel cell borders (only when cells are at least 6 pixels).
    """

    cell_px: int = 14
    darken: float = 0.35
    tint: float = 0.3
    grid_lines: bool = True

    def __post_init__(self) -> None:
        if self.cell_px < 1:
            raise ValueError(f"overlay cell_px={self.cell_px} must be >= 1.")
        if not 0.0 <= self.darken <= 1.0 or not 0.0 <= self.tint <= 1.0:
            raise ValueError(f"overlay darken={self.darken} and tint={self.tint} must lie in [0, 1].")


@dataclass(frozen=True)
class TokenGrid:
    """Per-token state of one call over all `cameras * tokens_per_camera` visual tokens.

    Attributes:
        kept: `[B, C, T]` bool, tokens the call kept.
        valid: `[B, C, T]` bool, tokens that could be selected (False for padded/missing cameras).
        side: grid side, `T = side**2`.
        camera_keys: the `C` camera feature names, in the policy's `image_features` order.
    """

    kept: Tensor
    valid: Tensor
    side: int
    camera_keys: list[str]

    @property
    def kept_per_camera(self) -> Tensor:
        """`[B, C]` long."""
        return self.kept.sum(-1)


def token_grid(policy, batch: dict[str, Tensor]) -> TokenGrid:
    """The kept/valid token grid of the policy's last inference call on `batch`.

    Raises:
        ValueError: if `tokens_per_camera` is not a square (no raster grid to draw on).
    """
    keys = list(policy.config.image_features)
    view, selection = policy.model.last_view, policy.model.last_selection
    tokens = view.tokens_per_camera if view is not None else policy.model.tokens_per_camera
    side = math.isqrt(tokens)
    if side * side != tokens:
        raise ValueError(f"tokens_per_camera={tokens} is not a square grid; cannot draw token overlays.")
    num_cameras = len(keys)
    if view is None:  # the unpruned path ran: every token of a present camera was kept
        batch_size = next(batch[k].shape[0] for k in keys if k in batch)
        present = torch.tensor([k in batch for k in keys])
        valid = present[None, :, None].expand(batch_size, num_cameras, tokens).clone()
        return TokenGrid(kept=valid.clone(), valid=valid, side=side, camera_keys=keys)
    columns_valid = view.visual_valid.cpu()
    columns_kept = columns_valid.clone()
    if selection is not None:
        columns_kept &= selection.keep_mask(view.num_visual).cpu()
    batch_size, full = columns_valid.shape[0], view.full_visual
    valid = torch.zeros(batch_size, full, dtype=torch.bool)
    kept = torch.zeros(batch_size, full, dtype=torch.bool)
    index = view.visual_index.cpu()
    valid[:, index], kept[:, index] = columns_valid, columns_kept
    shape = (batch_size, view.num_cameras, tokens)
    return TokenGrid(kept=kept.view(shape), valid=valid.view(shape), side=side, camera_keys=keys)


def camera_frames(batch: dict[str, Tensor], keys: list[str], size: int) -> np.ndarray:
    """Letterboxes each camera image of the batch to `size` x `size`; missing cameras are black.

    Args:
        batch: images `[B, 3, H, W]` (or `[B, H, W, 3]`) float in [0, 1] under `keys`.
    Returns:
        `[B, C, size, size, 3]` uint8.
    """
    present = [batch[k] for k in keys if k in batch]
    if not present:
        raise ValueError(f"None of the policy's cameras {keys} is in the batch (keys: {sorted(batch)}).")
    batch_size = present[0].shape[0]
    out = np.zeros((batch_size, len(keys), size, size, 3), dtype=np.uint8)
    for c, key in enumerate(keys):
        if key in batch:
            out[:, c] = letterbox(batch[key], size)
    return out


def letterbox(images: Tensor, size: int) -> np.ndarray:
    """`[B, 3, H, W]` or `[B, H, W, 3]` float [0, 1] -> `[B, size, size, 3]` uint8, aspect kept, centred."""
    images = images.detach().float().cpu()
    if images.shape[-1] == 3 and images.shape[1] != 3:
        images = images.permute(0, 3, 1, 2)
    height, width = images.shape[-2:]
    scale = size / max(height, width)
    new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
    resized = F.interpolate(images, size=(new_h, new_w), mode="bilinear", align_corners=False)
    top, left = (size - new_h) // 2, (size - new_w) // 2
    canvas = torch.zeros(images.shape[0], 3, size, size)
    canvas[:, :, top : top + new_h, left : left + new_w] = resized.clamp(0, 1)
    return (canvas.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()


def render(frame: np.ndarray, kept: Tensor, valid: Tensor, side: int, style: OverlayStyle) -> np.ndarray:
    """Draws one camera's token states over its frame.

    Args:
        frame: `[S, S, 3]` uint8 with `S = side * style.cell_px`.
        kept: `[T]` bool.
        valid: `[T]` bool.
    Returns:
        `[S, S, 3]` uint8.
    """
    cell = style.cell_px
    state = np.where(valid.numpy(), np.where(kept.numpy(), 0, 1), 2).reshape(side, side)
    state = np.repeat(np.repeat(state, cell, axis=0), cell, axis=1)[..., None]
    image = frame.astype(np.float32)
    pruned = image * style.darken * (1 - style.tint) + PRUNED_TINT * style.tint
    image = np.where(state == 1, pruned, np.where(state == 2, image * 0.1 + 30, image))
    if style.grid_lines and cell >= 6:
        image[::cell, :] *= 0.6
        image[:, ::cell] *= 0.6
    return image.clip(0, 255).astype(np.uint8)


def overlays(policy, batch: dict[str, Tensor], style: OverlayStyle) -> tuple[np.ndarray, TokenGrid]:
    """Overlays of the policy's last call: `[B, C, S, S, 3]` uint8 and the token grid they show."""
    grid = token_grid(policy, batch)
    frames = camera_frames(batch, grid.camera_keys, grid.side * style.cell_px)
    for b in range(frames.shape[0]):
        for c in range(frames.shape[1]):
            frames[b, c] = render(frames[b, c], grid.kept[b, c], grid.valid[b, c], grid.side, style)
    return frames, grid


def tile(rows: list[list[np.ndarray]], gap: int = 4) -> np.ndarray:
    """Arranges equally sized `[S, S, 3]` images in a grid (one list per row) with white gaps."""
    height, width = rows[0][0].shape[:2]
    cols = max(len(r) for r in rows)
    canvas = np.full((len(rows) * (height + gap) - gap, cols * (width + gap) - gap, 3), 255, dtype=np.uint8)
    for i, row in enumerate(rows):
        for j, image in enumerate(row):
            canvas[i * (height + gap) : i * (height + gap) + height, j * (width + gap) : j * (width + gap) + width] = image  # fmt: skip
    return canvas


def write_png(image: np.ndarray, path: str | Path) -> Path:
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path


def write_mp4(frames: list[np.ndarray], path: str | Path, fps: int = 2) -> Path:
    """Encodes `[H, W, 3]` uint8 frames as H.264 with pyav (sides padded to even sizes)."""
    import av

    if not frames:
        raise ValueError(f"No frames to write to {path}.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames[0].shape[:2]
    even_h, even_w = height + height % 2, width + width % 2
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = even_w, even_h, "yuv420p"
        for frame in frames:
            padded = np.zeros((even_h, even_w, 3), dtype=np.uint8)
            padded[:height, :width] = frame
            for packet in stream.encode(av.VideoFrame.from_ndarray(padded, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@dataclass
class OverlayRecorder:
    """A call observer (`observe.observe_calls`) keeping overlays of the first calls of each episode.

    Episodes are numbered like `PruningReport.episodes()`: batch rows of each `policy.reset()` group in
    order. `frames[e]` is a list of `[C, S, S, 3]` uint8 overlays of episode `e`, one per call.
    """

    style: OverlayStyle = field(default_factory=OverlayStyle)
    max_calls: int = 20
    max_episodes: int = 4
    frames: dict[int, list[np.ndarray]] = field(default_factory=dict)
    kept: dict[int, list[list[int]]] = field(default_factory=dict)
    camera_keys: list[str] = field(default_factory=list)
    policy: object = None
    _group: int = -1
    _offset: int = 0
    _rows: int = 0

    def __call__(self, policy, batch: dict[str, Tensor]) -> None:
        self.policy = policy
        group = policy.report.calls[-1]["episode_group"] if policy.report.calls else 0
        rows = next(v.shape[0] for k, v in batch.items() if k in policy.config.image_features)
        if group != self._group:
            self._offset += self._rows if self._group >= 0 else 0
            self._group, self._rows = group, rows
        wanted = [
            b for b in range(rows)
            if self._offset + b < self.max_episodes and len(self.frames.get(self._offset + b, [])) < self.max_calls
        ]  # fmt: skip
        if not wanted:
            return
        images, grid = overlays(policy, batch, self.style)
        self.camera_keys = grid.camera_keys
        for b in wanted:
            self.frames.setdefault(self._offset + b, []).append(images[b])
            self.kept.setdefault(self._offset + b, []).append(grid.kept_per_camera[b].tolist())
