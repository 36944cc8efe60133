"""The real `lerobot-eval` on LeRobot's MuJoCo sims (ALOHA, MetaWorld) with pruned tiny checkpoints.

Offscreen rendering: `MUJOCO_GL=egl` unless the caller chose another backend (`osmesa` needs libOSMesa).
Hub offline, one episode, one env. MetaWorld episodes are always 500 steps (LeRobot 0.6.1 hard-codes
it), so its checkpoint predicts 100-step chunks: five policy calls. Rendering 2 frames per step dominates
its wall time: about 4 min of CPU (9 min on 2 shared, busy cores).
"""

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from lerobot_prune import make_pruning_config
from lerobot_prune.families.tiny import init_tiny
from lerobot_prune.tools.convert import convert

TOKENS_PER_CAMERA = 256  # π0's SigLIP: (224 / 14)² tokens per camera
FASTV = {"keep_ratio": 0.25, "compact": True}


@dataclass(frozen=True)
class Sim:
    env_args: tuple[str, ...]  # `lerobot-eval` arguments selecting the env
    camera: str  # the one camera, as the policy sees it
    chunk_size: int  # = n_action_steps of the tiny checkpoint
    steps: int  # env steps of one episode


SIMS = {
    "aloha": Sim(("--env.type=aloha", "--env.task=AlohaTransferCube-v0", "--env.episode_length=20"),
                 "observation.images.top", chunk_size=10, steps=20),
    "metaworld": Sim(("--env.type=metaworld", "--env.task=push-v3"), "observation.image", chunk_size=100,
                     steps=500),
}  # fmt: skip


def sim_env() -> dict[str, str]:
    """The environment of a sim subprocess: Hub offline, MuJoCo rendering offscreen (EGL) unless set."""
    return {**os.environ, "HF_HUB_OFFLINE": "1", "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}


def pruned_checkpoint(policy_type: str, env_type: str, out: Path, strategy: str = "fastv", **pruning) -> Path:
    """A tiny random `policy_type` (e.g. `pi0`) for `env_type` (init-tiny's code path), converted to
    `pruned_<policy_type>` with `strategy`."""
    base = init_tiny(out / "base", policy_type=policy_type, env_type=env_type,
                     chunk_size=SIMS[env_type].chunk_size, n_action_steps=SIMS[env_type].chunk_size)  # fmt: skip
    return convert(base, out / "pruned", make_pruning_config(strategy, **pruning))


def run_lerobot_eval(ckpt: Path, sim: Sim, out: Path) -> tuple[dict, dict]:
    """Runs `lerobot-eval` for one episode; returns `eval_info.json` and `pruning_report.json`."""
    command = [shutil.which("lerobot-eval"), f"--policy.path={ckpt}", *sim.env_args, "--eval.n_episodes=1",
               "--eval.batch_size=1", "--eval.use_async_envs=false", "--policy.device=cpu",
               f"--output_dir={out / 'eval'}"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=sim_env(), timeout=1500, cwd=out)
    assert result.returncode == 0, result.stderr[-3000:]
    return (
        json.loads((out / "eval" / "eval_info.json").read_text()),
        json.loads((out / "eval" / "pruning_report.json").read_text()),
    )


# (sim, base policy type): every backbone on ALOHA; MetaWorld's 500 rendered steps once.
RUNS = [("aloha", "pi0"), ("aloha", "pi05"), ("metaworld", "pi0")]


@pytest.mark.sim
@pytest.mark.parametrize("env_type,policy_type", RUNS)
def test_lerobot_eval_on_mujoco_sim_keeps_a_quarter_of_each_camera(tmp_path, env_type, policy_type):
    sim = SIMS[env_type]
    ckpt = pruned_checkpoint(policy_type, env_type, tmp_path, "fastv", **FASTV)
    assert json.loads((ckpt / "config.json").read_text())["type"] == f"pruned_{policy_type}"

    info, report = run_lerobot_eval(ckpt, sim, tmp_path)

    assert info["overall"]["n_episodes"] == 1
    calls = sim.steps // sim.chunk_size
    assert report["summary"]["strategy"] == "fastv" and report["summary"]["calls"] == calls
    kept = int(TOKENS_PER_CAMERA * FASTV["keep_ratio"])
    assert report["summary"]["mean_kept_visual_per_camera"] == {sim.camera: kept}
    assert report["summary"]["mean_valid_visual_per_camera"] == {sim.camera: TOKENS_PER_CAMERA}
    assert [c["kept_visual_per_camera"] for c in report["calls"]] == [[[kept]]] * calls
    assert [e["episode"] for e in report["episodes"]] == [0]
    assert report["summary"]["flop_ratio"] < 1.0
