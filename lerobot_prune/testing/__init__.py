"""Test hardware without hardware: a fake camera type and an emulated Feetech servo bus.

LeRobot resolves an unknown camera type's device class in the parent package of its config module,
so the camera classes are re-exported here. The servo bus (`fake_feetech`, needs `feetech-servo-sdk`)
is imported by the `fake_bus` launcher, not here.
"""

from .fake_camera import PruneFakeCamera, PruneFakeCameraConfig

__all__ = ["PruneFakeCamera", "PruneFakeCameraConfig"]
