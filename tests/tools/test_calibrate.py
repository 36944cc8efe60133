"""`lerobot-prune calibrate`: TIES checkpoints only, writes where the policy reads, stops at --frames."""

import json

import pytest

from lerobot_prune import make_pruning_config
from lerobot_prune.observe import observe_calls
from lerobot_prune.tools.calibrate import CalibrateArgs, calibrate
from lerobot_prune.tools.convert import convert


def test_calibrate_refuses_a_checkpoint_that_is_not_ties(tiny_base_checkpoint, tmp_path):
    ckpt = convert(tiny_base_checkpoint, tmp_path / "fastv", make_pruning_config("fastv", keep_ratio=0.5))
    with pytest.raises(
        ValueError, match=r"pruning.type='fastv'; only TIES uses calibration .*--pruning.type=ties"
    ):
        calibrate(CalibrateArgs(policy_path=str(ckpt), env_type="pusht", frames=2))
    assert not (ckpt / "ties_calibration.json").exists()


@pytest.mark.sim
def test_calibrate_writes_to_calibration_path_and_stops_mid_episode(tiny_base_checkpoint, tmp_path):
    first = convert(tiny_base_checkpoint, tmp_path / "first", make_pruning_config("ties", keep_ratio=0.5))
    calls = []
    with observe_calls(lambda policy, batch: calls.append(1)):
        written = calibrate(
            CalibrateArgs(policy_path=str(first), env_type="pusht", episode_length=300, frames=3)
        )
    assert written == first / "ties_calibration.json" and json.loads(written.read_text())["frames"] == 3
    assert (
        len(calls) == 2
    )  # the third frame is measured, then the rollout stops (300 steps would take 75 calls)

    shared = tmp_path / "shared_tau.json"  # statistics another checkpoint reads through calibration_path
    shared.write_text(written.read_text())
    ckpt = convert(tiny_base_checkpoint, tmp_path / "ties",
                   make_pruning_config("ties", keep_ratio=0.5, calibration_path=str(shared)))  # fmt: skip
    out = calibrate(CalibrateArgs(policy_path=str(ckpt), env_type="pusht", episode_length=300, frames=2))
    assert out == shared and json.loads(shared.read_text())["frames"] == 2  # refreshed where the policy reads
    assert not (ckpt / "ties_calibration.json").exists()
