"""The real `lerobot-eval` on LeRobot's PushT sim with converted tiny checkpoints (Hub offline)."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from lerobot_prune import list_strategies, make_pruning_config
from lerobot_prune.tools.convert import convert

ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}
# PushT's state is the 2-D agent position; the tiny backbone has 4 layers.
SETTINGS = {"fastv": {"keep_ratio": 0.25}, "adp": {"eef_slice": [0, 2]}, "dtp": {"layers": [1, 2]}}
DIAGNOSTICS = {"vla_pruner": "union_size", "ties": "trust_weight", "adp": "gate_state", "dtp": "distracting"}


def _eval(ckpt, out, cwd, episode_length=20):
    result = subprocess.run(
        [shutil.which("lerobot-eval"), f"--policy.path={ckpt}", "--env.type=pusht", f"--env.episode_length={episode_length}",
         "--eval.n_episodes=2", "--eval.batch_size=2", "--eval.use_async_envs=false", "--policy.device=cpu",
         f"--output_dir={out}"],
        capture_output=True, text=True, env=ENV, timeout=600, cwd=cwd,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((out / "eval_info.json").read_text()), json.loads(
        (out / "pruning_report.json").read_text()
    )


@pytest.mark.sim
@pytest.mark.parametrize(
    "strategy,kwargs,kept", [("fastv", {"keep_ratio": 0.25, "compact": True}, 64), ("compact", {}, 256)]
)
def test_lerobot_eval_pusht_writes_eval_info_and_pruning_report(
    tiny_base_checkpoint, tmp_path, strategy, kwargs, kept
):
    ckpt = convert(tiny_base_checkpoint, tmp_path / "ckpt", make_pruning_config(strategy, **kwargs))
    info, report = _eval(ckpt, tmp_path / "eval", tmp_path)
    assert info["overall"]["n_episodes"] == 2
    assert report["summary"]["strategy"] == strategy and report["summary"]["calls"] == 2
    # PushT has one camera; init-tiny added one padded camera that is never kept.
    for call in report["calls"]:
        assert call["kept_visual_per_camera"] == [[kept, 0], [kept, 0]]
    assert [e["episode"] for e in report["episodes"]] == [0, 1]
    assert report["summary"]["flop_ratio"] < 1.0


@pytest.mark.sim
@pytest.mark.parametrize("strategy", [s for s in list_strategies() if s not in ("none", "compact")])
def test_every_strategy_runs_in_lerobot_eval_and_reports_diagnostics(
    tiny_base_checkpoint, tmp_path, strategy
):
    ckpt = convert(
        tiny_base_checkpoint, tmp_path / "ckpt", make_pruning_config(strategy, **SETTINGS.get(strategy, {}))
    )
    if strategy == "ties":
        calibrate = [shutil.which("lerobot-prune"), "calibrate", f"--policy_path={ckpt}", "--env_type=pusht",
                     "--episode_length=20", "--frames=4"]  # fmt: skip
        done = subprocess.run(calibrate, capture_output=True, text=True, env=ENV, timeout=600, cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
        assert json.loads((ckpt / "ties_calibration.json").read_text())["frames"] == 4
    info, report = _eval(ckpt, tmp_path / "eval", tmp_path, episode_length=50)
    assert info["overall"]["n_episodes"] == 2 and report["summary"]["calls"] == 5
    pruned_calls = [
        c for c in report["calls"] if c["flop_ratio"] < 1.0 or c["kept_visual_per_camera"][0][0] < 256
    ]
    if strategy not in ("adp", "dtp"):  # the gate and DTP's rule may keep everything on random weights
        assert pruned_calls, f"{strategy} never pruned in 5 calls"
    if strategy in DIAGNOSTICS:
        assert all(DIAGNOSTICS[strategy] in c["diagnostics"] for c in report["calls"][-2:])
        assert DIAGNOSTICS[strategy] in report["summary"]["diagnostics_mean"]


@pytest.mark.sim
def test_pruned_pi05_runs_in_lerobot_eval(tmp_path):
    from lerobot_prune.families.tiny import init_tiny

    base = init_tiny(tmp_path / "pi05", policy_type="pi05", empty_cameras=1)
    ckpt = convert(base, tmp_path / "ckpt", make_pruning_config("fastv", keep_ratio=0.25, compact=True))
    info, report = _eval(ckpt, tmp_path / "eval", tmp_path)
    assert info["overall"]["n_episodes"] == 2
    assert report["summary"]["strategy"] == "fastv"
    assert all(call["kept_visual_per_camera"] == [[64, 0], [64, 0]] for call in report["calls"])


def _eval_form(policy_args, out, cwd):
    """The real lerobot-eval, one 5-step PushT episode, with `policy_args` naming the policy."""
    result = subprocess.run(
        [shutil.which("lerobot-eval"), *policy_args, "--env.type=pusht", "--env.episode_length=5",
         "--eval.n_episodes=1", "--eval.batch_size=1", "--eval.use_async_envs=false", "--policy.device=cpu",
         f"--output_dir={out}"],
        capture_output=True, text=True, env=ENV, timeout=900, cwd=cwd,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((out / "pruning_report.json").read_text())


@pytest.mark.sim
@pytest.mark.parametrize("form", ["path", "type"])
def test_moved_converted_checkpoint_runs_in_lerobot_eval_after_the_base_is_deleted(tmp_path, form):
    """`--policy.path=<moved folder>` and `--policy.type=pruned_pi0 --policy.pretrained_path=<moved folder>`
    (saved settings kept, only the typed flags changed), with the base checkpoint gone."""
    from lerobot_prune.families.tiny import init_tiny

    base = init_tiny(tmp_path / "base", policy_type="pi0", empty_cameras=1)
    ckpt = convert(base, tmp_path / "ckpt", make_pruning_config("fastv", keep_ratio=0.25, compact=True))
    moved = Path(shutil.move(str(ckpt), str(tmp_path / "elsewhere")))
    shutil.rmtree(base)
    if form == "path":
        report = _eval_form([f"--policy.path={moved}"], tmp_path / "eval", tmp_path)
        kept = 64
    else:
        args = ["--policy.type=pruned_pi0", f"--policy.pretrained_path={moved}", "--policy.pruning.type=fastv",
                "--policy.pruning.keep_ratio=0.125", "--policy.n_action_steps=2"]  # fmt: skip
        report = _eval_form(args, tmp_path / "eval", tmp_path)
        kept = 32
    assert report["summary"]["strategy"] == "fastv"
    assert report["summary"]["calls"] == (
        1 if form == "path" else 3
    )  # saved n_action_steps 10, or the flag's 2
    assert all(call["kept_visual_per_camera"] == [[kept, 0]] for call in report["calls"])  # compact kept


@pytest.mark.sim
@pytest.mark.parametrize("family", ["pi0", "pi05", "smolvla"])
def test_policy_type_with_a_base_checkpoint_keeps_its_settings(tmp_path, family):
    """`--policy.type=pruned_<family> --policy.pretrained_path=<base family checkpoint>`: architecture,
    features and settings from the base's config.json, the strategy from the command line."""
    from lerobot_prune.families.tiny import init_tiny

    base = init_tiny(tmp_path / "base", policy_type=family, empty_cameras=1)
    args = [f"--policy.type=pruned_{family}", f"--policy.pretrained_path={base}", "--policy.pruning.type=fastv",
            "--policy.pruning.keep_ratio=0.25", "--policy.pruning.compact=true"]  # fmt: skip
    report = _eval_form(args, tmp_path / "eval", tmp_path)
    assert report["summary"]["strategy"] == "fastv" and report["summary"]["calls"] == 1
    per_camera = report["calls"][0]["kept_visual_per_camera"][0]
    assert (
        per_camera[1] == 0 and 0 < per_camera[0] < 256
    )  # the padded camera was dropped, the real one pruned
