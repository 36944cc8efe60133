"""`prune_fake_camera`: a LeRobot camera type that needs no device (tests and demos).

Frames are deterministic uint8 `[height, width, 3]` arrays that change with every read: a colour
gradient scrolled by the frame index with a bright square moving across it. The same config and
read count always give the same frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from lerobot.cameras.camera import Camera
from lerobot.cameras.configs import CameraConfig
from lerobot.utils.errors import DeviceAlreadyConnectedError, DeviceNotConnectedError


@CameraConfig.register_subclass("prune_fake_camera")
@dataclass(kw_only=True)
class PruneFakeCameraConfig(CameraConfig):
    """A camera that synthesises frames.

    Args:
        width: Frame width in pixels.
        height: Frame height in pixels.
        fps: Nominal frame rate (reported only; frames are produced on demand).
        seed: Varies the colours so several fake cameras on one robot differ.
    """

    width: int = 128
    height: int = 96
    fps: int = 30
    seed: int = 0

    def __post_init__(self):
        for name in ("width", "height", "fps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"prune_fake_camera: {name} must be a positive integer, got {value!r}.")


def synthetic_frame(width: int, height: int, index: int, seed: int = 0) -> np.ndarray:
    """The `index`-th frame, uint8 `[height, width, 3]`."""
    ys, xs = np.mgrid[0:height, 0:width]
    frame = np.empty((height, width, 3), dtype=np.uint8)
    frame[..., 0] = (xs * 255 // max(width - 1, 1) + 7 * index + 40 * seed) % 256
    frame[..., 1] = (ys * 255 // max(height - 1, 1) + 3 * index) % 256
    frame[..., 2] = (xs + ys + 11 * index + 90 * seed) % 256
    side = max(min(width, height) // 6, 1)
    x0 = (5 * index) % max(width - side, 1)
    y0 = (3 * index) % max(height - side, 1)
    frame[y0 : y0 + side, x0 : x0 + side] = 255
    return frame


class PruneFakeCamera(Camera):
    """The device class of `PruneFakeCameraConfig` (found by LeRobot's `make_device_from_device_class`)."""

    def __init__(self, config: PruneFakeCameraConfig):
        super().__init__(config)
        self.config = config
        self.seed = config.seed
        self.frames_read = 0
        self._connected = False

    @property
    def is_connected(self) -> bool:
        return self._connected

    @staticmethod
    def find_cameras() -> list[dict]:
        return [{"name": "prune_fake_camera", "type": "prune_fake_camera", "id": 0}]

    def connect(self, warmup: bool = True) -> None:
        if self._connected:
            raise DeviceAlreadyConnectedError(f"{self} is already connected.")
        self._connected = True

    def read(self) -> np.ndarray:
        if not self._connected:
            raise DeviceNotConnectedError(f"{self} is not connected.")
        frame = synthetic_frame(self.width, self.height, self.frames_read, self.seed)
        self.frames_read += 1
        return frame

    def async_read(self, timeout_ms: float = 200) -> np.ndarray:
        return self.read()

    def read_latest(self, max_age_ms: int = 500) -> np.ndarray:
        return self.read()

    def disconnect(self) -> None:
        if not self._connected:
            raise DeviceNotConnectedError(f"{self} is not connected.")
        self._connected = False
