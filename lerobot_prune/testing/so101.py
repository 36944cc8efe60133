"""Command lines for LeRobot's robot entry points on an emulated SO-101 (fake Feetech bus + fake camera)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .fake_feetech import LOG_ENV, write_calibration_file

ROBOT_ID = "prune_test_arm"


def so101_args(workdir: Path, camera: str = "front", port: str = "/dev/prune_fake_bus") -> list[str]:
    """`--robot.*` arguments of an emulated SO-101 with one fake camera; writes its calibration file."""
    calibration = write_calibration_file(workdir / "calibration", ROBOT_ID).parent
    return [
        "--robot.type=so101_follower", f"--robot.port={port}", f"--robot.id={ROBOT_ID}",
        f"--robot.calibration_dir={calibration}",
        f"--robot.cameras={{{camera}: {{type: prune_fake_camera, width: 128, height: 96, fps: 30}}}}",
    ]  # fmt: skip


def fake_bus_command(module: str, args: list[str]) -> list[str]:
    """Runs LeRobot's `module` (e.g. `lerobot.async_inference.robot_client`) with the fake bus installed."""
    return [sys.executable, "-m", "lerobot_prune.testing.fake_bus", module, *args]


def fake_bus_env(bus_log: Path) -> dict[str, str]:
    """Environment of a process whose fake bus logs its writes to `bus_log` (read with `read_bus_log`)."""
    return {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", LOG_ENV: str(bus_log)}


def robot_client_command(workdir: Path, server: str, checkpoint: Path, policy_type: str, task: str,
                         fps: int = 10, actions_per_chunk: int = 10) -> list[str]:  # fmt: skip
    """LeRobot's async robot client on an emulated SO-101 in `workdir`, asking `server` (host:port) to run
    `checkpoint` on the CPU."""
    args = [*so101_args(workdir), f"--server_address={server}", f"--policy_type={policy_type}",
            f"--pretrained_name_or_path={checkpoint}", "--policy_device=cpu",
            f"--actions_per_chunk={actions_per_chunk}", f"--task={task}", f"--fps={fps}"]  # fmt: skip
    return fake_bus_command("lerobot.async_inference.robot_client", args)
