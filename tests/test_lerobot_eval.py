"""The real `lerobot-eval` on LeRobot's PushT sim with converted tiny checkpoints (Hub offline)."""

import json
import os
import shutil
import subprocess

import pytest

from lerobot_prune import make_pruning_config
from lerobot_prune.convert import convert


@pytest.mark.sim
@pytest.mark.parametrize(
    "strategy,kwargs,kept", [("fastv", {"keep_ratio": 0.25, "compact": True}, 64), ("compact", {}, 256)]
)
def test_lerobot_eval_pusht_writes_eval_info_and_pruning_report(
    tiny_base_checkpoint, tmp_path, strategy, kwargs, kept
):
    ckpt = convert(tiny_base_checkpoint, tmp_path / "ckpt", make_pruning_config(strategy, **kwargs))
    out = tmp_path / "eval"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [shutil.which("lerobot-eval"), f"--policy.path={ckpt}", "--env.type=pusht", "--env.episode_length=20",
         "--eval.n_episodes=2", "--eval.batch_size=2", "--eval.use_async_envs=false", "--policy.device=cpu",
         f"--output_dir={out}"],
        capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    info = json.loads((out / "eval_info.json").read_text())
    assert info["overall"]["n_episodes"] == 2
    report = json.loads((out / "pruning_report.json").read_text())
    assert report["summary"]["strategy"] == strategy and report["summary"]["calls"] == 2
    # PushT has one camera; init-tiny added one padded camera that is never kept.
    for call in report["calls"]:
        assert call["kept_visual_per_camera"] == [[kept, 0], [kept, 0]]
    assert [e["episode"] for e in report["episodes"]] == [0, 1]
    assert report["summary"]["flop_ratio"] < 1.0
