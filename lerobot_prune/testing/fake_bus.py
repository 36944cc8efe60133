"""Runs a LeRobot module with emulated Feetech servos: `python -m lerobot_prune.testing.fake_bus <module> <args>`.

For tests and demos only. LeRobot's SO-100/SO-101 robot classes construct `FeetechMotorsBus` by the name
they imported; this launcher rebinds that one name to `FakeFeetechMotorsBus` (a subclass that only swaps
the serial port) before running the module as `__main__`, e.g.
`python -m lerobot_prune.testing.fake_bus lerobot.scripts.lerobot_rollout --robot.type=so101_follower ...`.
Nothing else in LeRobot is changed, and the fake camera type `prune_fake_camera` is registered.
"""

from __future__ import annotations

import importlib
import runpy
import sys

import lerobot_prune.testing  # noqa: F401  (registers prune_fake_camera)

from .fake_feetech import FakeFeetechMotorsBus

ROBOT_MODULES = ("lerobot.robots.so_follower.so_follower",)


def install() -> None:
    """Makes the SO follower robots build `FakeFeetechMotorsBus` in this process."""
    for name in ROBOT_MODULES:
        importlib.import_module(name).FeetechMotorsBus = FakeFeetechMotorsBus


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0].startswith("-"):
        sys.exit("usage: python -m lerobot_prune.testing.fake_bus <lerobot module> [args...]")
    install()
    sys.argv = list(argv)
    runpy.run_module(argv[0], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
