"""Run LeRobot's real robot entry points on an emulated SO-101 (fake Feetech bus + fake camera).

Every helper takes the pruned checkpoint as an argument, so other pruned policy types join the tests by
adding their base type to `ROBOT_CHECKPOINTS`.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from lerobot_prune import make_pruning_config
from lerobot_prune.testing.checkpoints import tiny_pruned_robot
from lerobot_prune.testing.fake_feetech import read_bus_log
from lerobot_prune.testing.so101 import ROBOT_ID, fake_bus_command, fake_bus_env, so101_args  # noqa: F401

TASK = "pick up the cube"
# Tiny checkpoints for an SO-101 with one camera "front", per pruned policy type.
ROBOT_CHECKPOINTS = {"pruned_pi0": "pi0", "pruned_pi05": "pi05"}  # pruned type -> base type
PRUNING = {"type": "fastv", "keep_ratio": 0.25}  # prunes from the first call on


def make_robot_checkpoint(policy_type: str, out: Path, pruning: dict = PRUNING):
    pruning = make_pruning_config(pruning["type"], keep_ratio=pruning["keep_ratio"])
    return tiny_pruned_robot(out, pruning, policy_type=ROBOT_CHECKPOINTS[policy_type])


def run_rollout(ckpt: Path, workdir: Path, extra: list[str] = (), duration: int = 3, camera: str = "front",
                timeout: int = 300) -> tuple[subprocess.CompletedProcess, list[dict]]:  # fmt: skip
    """`lerobot-rollout` on the emulated arm; returns the finished process and its Goal_Position writes."""
    workdir.mkdir(parents=True, exist_ok=True)
    bus_log = workdir / "bus.jsonl"
    bus_log.unlink(missing_ok=True)
    args = [*so101_args(workdir, camera), f"--policy.path={ckpt}", f"--task={TASK}", f"--duration={duration}",
            "--fps=10", "--play_sounds=false", "--return_to_initial_position=false", *extra]  # fmt: skip
    done = subprocess.run(
        fake_bus_command("lerobot.scripts.lerobot_rollout", args), capture_output=True, text=True,
        env=fake_bus_env(bus_log), timeout=timeout, cwd=workdir, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    return done, read_bus_log(bus_log, "Goal_Position")


def record_dataset(ckpt: Path, workdir: Path, episodes: int = 2, episode_time_s: int = 2) -> Path:
    """Records `episodes` rollouts of the pruned policy with the episodic strategy; returns the dataset root.

    The dataset is `local/rollout_prune_so101` (LeRobot v3, video-encoded camera `front`, 10 fps).
    """
    root = workdir / "dataset"
    done, writes = run_rollout(ckpt, workdir, duration=episodes * episode_time_s + 5, extra=[
        "--strategy.type=episodic", "--dataset.repo_id=local/rollout_prune_so101", f"--dataset.root={root}",
        f"--dataset.single_task={TASK}", f"--dataset.num_episodes={episodes}",
        f"--dataset.episode_time_s={episode_time_s}", "--dataset.reset_time_s=0", "--dataset.push_to_hub=false",
        "--dataset.fps=10", "--dataset.no_stamp=true",
    ])  # fmt: skip
    if done.returncode != 0 or not writes:
        raise RuntimeError(f"recording failed (rc {done.returncode}):\n{done.stderr[-3000:]}")
    return root
