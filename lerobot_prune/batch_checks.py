"""Checks of an inference batch and of the actions it produced: one clear error instead of a failure deep
inside a convolution, or a NaN action reaching a robot.

`check_observation` runs once per policy call before any model work; its value checks (non-finite values,
image range) read back a single small tensor, so they cost one host sync.
"""

from __future__ import annotations

import torch
from torch import Tensor

RANGE_SLACK = 1e-3  # resizing/interpolation can overshoot [0, 1] by float rounding


class BadObservationError(ValueError):
    """An observation the policy cannot run on; the message names the key, what it got and what it needs."""


class NonFiniteActionError(RuntimeError):
    """The policy produced NaN/inf actions; they are never returned."""


def check_observation(batch: dict[str, Tensor], image_channels: dict[str, int], state_key: str,
                      state_dim: int | None, batch_keys: tuple[str, ...] = (),
                      unit_range_images: bool = True) -> None:  # fmt: skip
    """Raises `BadObservationError` for the first problem of a preprocessed batch.

    Args:
        batch: what the policy's `predict_action_chunk` gets (after LeRobot's preprocessor).
        image_channels: camera key -> channels the policy needs (`[B, C, H, W]` float images).
        state_key: key of the `[B, state_dim]` state; `state_dim` None skips its size check.
        batch_keys: other keys whose first dimension must be the batch size (e.g. language tokens).
        unit_range_images: images must lie in [0, 1] (LeRobot's VISUAL normalisation is IDENTITY).
    """
    images = {k: batch[k] for k in image_channels if k in batch}
    for key, image in images.items():
        _check_image_layout(key, image, image_channels[key])
    sized = {**images, **{k: batch[k] for k in (state_key, *batch_keys) if isinstance(batch.get(k), Tensor)}}
    if not sized:
        return
    sizes = {k: int(v.shape[0]) if v.ndim else None for k, v in sized.items()}
    if len(set(sizes.values())) > 1:
        raise BadObservationError(f"Batch sizes differ between observation keys: {sizes}; all must be equal.")
    if next(iter(sizes.values())) == 0:
        raise BadObservationError(f"Empty batch: {', '.join(sizes)} have batch size 0.")
    state = batch.get(state_key)
    if (
        isinstance(state, Tensor)
        and state_dim is not None
        and (state.ndim != 2 or state.shape[1] != state_dim)
    ):
        raise BadObservationError(
            f"{state_key} has shape {tuple(state.shape)}; this policy needs [batch, {state_dim}] (the state "
            "size of its input_features)."
        )
    floats = {k: v for k, v in sized.items() if k in images or k == state_key}
    stats = torch.stack(
        [
            torch.stack([v.isfinite().all().float(), v.amin().float(), v.amax().float()])
            for v in floats.values()
        ]
    ).tolist()  # the one host sync
    for (key, _), (finite, low, high) in zip(floats.items(), stats, strict=True):
        if not finite:
            raise BadObservationError(f"{key} contains NaN or inf values; the policy needs finite inputs.")
        if key in images and unit_range_images and (low < -RANGE_SLACK or high > 1 + RANGE_SLACK):
            hint = " (0-255 pixel values: divide by 255)" if high > 1.5 else ""
            raise BadObservationError(
                f"{key} has values in [{low:.4g}, {high:.4g}]; images must be floats in [0, 1]{hint}."
            )


def _check_image_layout(key: str, image: Tensor, channels: int) -> None:
    if not image.is_floating_point():
        raise BadObservationError(
            f"{key} is a {image.dtype} tensor; images must be floats in [0, 1] with shape [batch, {channels}, "
            "H, W] (uint8 pixels: convert with .float() / 255, as LeRobot's processors do)."
        )
    if image.ndim != 4:
        raise BadObservationError(
            f"{key} has shape {tuple(image.shape)}; images need [batch, {channels}, H, W]."
        )
    if image.shape[1] != channels:
        layout = " (channels-last: permute(0, 3, 1, 2))" if image.shape[-1] == channels else ""
        raise BadObservationError(
            f"{key} has shape {tuple(image.shape)} with {image.shape[1]} channels; images need "
            f"[batch, {channels}, H, W]{layout}."
        )


def nonfinite_rows(actions: Tensor) -> list[int]:
    """Batch rows of `[B, ...]` actions that hold NaN or inf."""
    return (~actions.isfinite()).flatten(1).any(dim=1).nonzero().flatten().tolist()
