"""Two episodes in one process give the same actions as each episode in a fresh process (§10.9)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from episode_runner import run_episode

from lerobot_policy_prune.pruned_pi0.modeling_pruned_pi0 import PrunedPI0Policy
from lerobot_prune import make_pruning_config
from lerobot_prune.families.tiny import init_tiny_pi0
from lerobot_prune.strategies.ties_calibration import CALIBRATION_FILENAME, calibration_record
from lerobot_prune.tools.convert import convert

STATEFUL = {
    "vla_pruner": {"window": 2, "keep_ratio": 0.25},
    "ties": {"similarity_threshold": 0.1},
    "adp": {"eef_slice": [0, 2], "initial_state": 1},
    "random": {},
    "dtp": {"layers": [1, 2], "tau": 0.3},
}


@pytest.fixture(scope="module")
def one_camera_base(tmp_path_factory):
    return init_tiny_pi0(
        tmp_path_factory.mktemp("iso") / "base", empty_cameras=0, chunk_size=4, n_action_steps=4
    )


@pytest.mark.parametrize("strategy", list(STATEFUL))
def test_second_episode_matches_a_fresh_process(one_camera_base, tmp_path, strategy):
    ckpt = convert(one_camera_base, tmp_path / strategy, make_pruning_config(strategy, **STATEFUL[strategy]))
    if strategy == "ties":
        backbone = {"type": "pi0", "vlm_depth": 4, "width": 64, "tokens_per_camera": 256}
        record = calibration_record([-0.1, 0.0, 0.1], backbone, 2, 0.219, "test")
        (Path(ckpt) / CALIBRATION_FILENAME).write_text(json.dumps(record))
    policy = PrunedPI0Policy.from_pretrained(ckpt)
    first = run_episode(policy, episode=0)
    second = run_episode(policy, episode=1)
    calls = policy.report.calls
    assert len(calls) == 12 and any(c["kept_visual_per_camera"] < c["valid_visual_per_camera"] for c in calls)
    for episode, in_process in ((0, first), (1, second)):
        out = tmp_path / f"episode{episode}.pt"
        runner = Path(__file__).parents[1] / "episode_runner.py"
        done = subprocess.run([sys.executable, str(runner), str(ckpt), str(episode), str(out)], capture_output=True,
                              text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        assert torch.equal(torch.load(out), in_process), f"episode {episode} differs from a fresh process"
