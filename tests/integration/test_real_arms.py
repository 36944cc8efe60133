"""The real `lerobot-rollout` driving LeRobot's real `so101_follower` class with a pruned policy.

The arm is emulated below pyserial (`lerobot_prune.testing.fake_feetech`) and the camera is the
`prune_fake_camera` type; every goal position LeRobot writes to the servos is logged and checked here.
"""

import json

import pyarrow.parquet as pq
import pytest
from arms_helpers import run_rollout

from lerobot_prune.testing.fake_feetech import RANGE

MID_POSITION = sum(RANGE) // 2  # where the emulated servos start

pytestmark = pytest.mark.robot


def _ok(done):
    assert done.returncode == 0, done.stderr[-4000:]


def test_rollout_sync_sends_pruned_actions_to_the_motors(robot_checkpoint, tmp_path):
    done, writes = run_rollout(robot_checkpoint, tmp_path, duration=4)
    _ok(done)
    # Wall-clock bound: on a loaded CPU one call can take seconds, so only "some" writes are guaranteed.
    assert writes, f"no Goal_Position write reached the bus\n{done.stderr[-3000:]}"
    assert all(sorted(w["values"]) == ["1", "2", "3", "4", "5", "6"] for w in writes)
    assert any(v != MID_POSITION for w in writes for v in w["values"].values())  # moved by the policy
    assert "fastv (keep 0.25)" in done.stderr and "64" in done.stderr.split("fastv (keep 0.25)")[-1]


def test_rollout_rtc_sends_pruned_actions_to_the_motors(robot_checkpoint, tmp_path):
    done, writes = run_rollout(
        robot_checkpoint, tmp_path, duration=4,
        extra=["--inference.type=rtc", "--inference.rtc.execution_horizon=5"],
    )  # fmt: skip
    _ok(done)
    assert "RTC inference thread started" in done.stderr
    assert writes, f"no Goal_Position write reached the bus\n{done.stderr[-3000:]}"
    assert any(v != MID_POSITION for w in writes for v in w["values"].values())
    assert "fastv (keep 0.25)" in done.stderr


def test_episodic_rollout_records_a_lerobot_dataset(so101_recorded_dataset):
    root, repo_id = so101_recorded_dataset
    info = json.loads((root / "meta" / "info.json").read_text())
    assert info["total_episodes"] == 2 and info["codebase_version"] == "v3.0"
    assert info["total_frames"] >= 2 and info["fps"] == 10  # frames depend on CPU load
    assert info["features"]["action"]["names"][0] == "shoulder_pan.pos"
    assert info["features"]["observation.images.front"]["dtype"] == "video"
    table = pq.read_table(sorted((root / "data").rglob("*.parquet"))[0])
    assert table.num_rows == info["total_frames"]
    assert sorted(set(table.column("episode_index").to_pylist())) == [0, 1]
    assert list((root / "videos" / "observation.images.front").rglob("*.mp4"))
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    dataset = LeRobotDataset(repo_id, root=root)
    assert len(dataset) == info["total_frames"]
    assert tuple(dataset[0]["observation.state"].shape) == (6,)


def test_camera_name_mismatch_names_both_sides(robot_checkpoint, tmp_path):
    done, writes = run_rollout(robot_checkpoint, tmp_path, duration=2, camera="wrist")
    assert done.returncode != 0 and not writes
    assert "Visual feature mismatch" in done.stderr
    assert "observation.images.front" in done.stderr and "observation.images.wrist" in done.stderr
    assert "--rename_map" in done.stderr


def test_rename_map_with_a_wrong_key_gives_the_exact_rename_map(robot_checkpoint, tmp_path):
    done, writes = run_rollout(
        robot_checkpoint, tmp_path, duration=2, camera="wrist",
        extra=['--rename_map={"observation.images.wirst": "observation.images.front"}'],
    )  # fmt: skip
    assert not writes, "the policy must not drive the arm with a camera it does not know"
    assert "['observation.images.wrist'] are not cameras of this policy" in done.stderr
    assert """--rename_map='{"observation.images.wrist": "observation.images.front"}'""" in done.stderr
