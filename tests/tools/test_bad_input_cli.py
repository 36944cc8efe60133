"""`lerobot-prune` turns bad arguments and bad checkpoint files into one line on stderr and exit code 1.

Each row: how to spoil a copy of the tiny π0 checkpoint (or nothing), the command, and what the one-line
message must name (the bad value and, where there are choices, the valid ones).
"""

import json
import shutil
import subprocess
import sys

import pytest

from lerobot_prune.tools.cli import main

VALID_TYPES = "valid types: none, compact, random, fastv"


def _set_pruning_type(ckpt, value):
    config = json.loads((ckpt / "config.json").read_text())
    config["pruning"]["type"] = value
    (ckpt / "config.json").write_text(json.dumps(config))


def _edit_arch(key, value):
    def edit(base):
        sidecar = base / "lerobot_prune_arch.json"
        sizes = json.loads(sidecar.read_text())
        sizes[key] = value
        sidecar.write_text(json.dumps(sizes))

    return edit


def _write(name, text):
    return lambda base: (base / name).write_text(text)


def _truncate_weights(base):
    path = base / "model.safetensors"
    path.write_bytes(path.read_bytes()[:100])


CASES = {
    "keep_ratio out of range": (
        None, ["--pruning.type=fastv", "--pruning.keep_ratio=1.5"], ["pruning.keep_ratio=1.5", "(0, 1]"]
    ),
    "keep_ratio not a number": (
        None, ["--pruning.type=fastv", "--pruning.keep_ratio=abc"], ["pruning.keep_ratio", "'abc'", "float"]
    ),
    "layer outside the backbone": (
        None, ["--pruning.type=fastv", "--pruning.layer=7"], ["pruning.layer=7", "[1, 3]"]
    ),
    "ADP split with NaN": (
        None, ["--pruning.type=adp", "--pruning.split=[nan,0.6]"], ["pruning.split=[nan, 0.6]", "finite"]
    ),
    "bad fallback": (
        None, ["--pruning.type=fastv", "--pruning.fallback=ignore"], ["fallback='ignore'", "'raise', 'full_vision'"]
    ),
    "bad choice field": (
        None, ["--pruning.type=vla_pruner", "--pruning.weighting=newest"], ["weighting='newest'", "choose one of"]
    ),
    "malformed config.json": (
        _write("config.json", "{not json"), [], ["config.json is not valid JSON"]
    ),
    "config.json of another policy type": (
        _write("config.json", json.dumps({"type": "act"})), [], ["'act' checkpoint", "['pi0', 'pi05'"]
    ),
    "malformed arch sidecar": (
        _write("lerobot_prune_arch.json", "[1,"), [], ["lerobot_prune_arch.json is not valid JSON"]
    ),
    "truncated weights": (
        _truncate_weights, [], ["model.safetensors is not a readable safetensors file"]
    ),
    "MLP width that does not match the weights": (
        _edit_arch("mlp_dim", 256), [], ["vlm mlp: 128 in the weights vs 256 in the config"]
    ),
    "vision depth that does not match the weights": (
        _edit_arch("vision_depth", 3), [], ["vision depth: 1 in the weights vs 3 in the config"]
    ),
    "heads that do not match the weights": (
        _edit_arch("num_kv_heads", 2), [], ["vlm kv size: 16 in the weights vs 32 in the config"]
    ),
    "vocabulary that does not match the weights": (
        _edit_arch("vocab_size", 2048), [], ["vocab size: 1024 in the weights vs 2048 in the config"]
    ),
    "unknown arch key": (
        _edit_arch("depht", 2), [], ["unknown: ['depht']"]
    ),
    "tokenizer that is not a folder": (
        None, ["--tokenizer=/nonexistent/tok"], ["tokenizer='/nonexistent/tok' is not a folder"]
    ),
}  # fmt: skip


def _run(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    return exit_info.value.code, err[-1] if err else ""


@pytest.mark.parametrize("case", list(CASES))
def test_convert_errors_are_one_line_naming_the_value(tiny_base_checkpoint, tmp_path, capsys, case):
    spoil, args, expected = CASES[case]
    base = tiny_base_checkpoint
    if spoil is not None:
        base = tmp_path / "base"
        shutil.copytree(tiny_base_checkpoint, base)
        spoil(base)
    code, line = _run(["convert", f"--base={base}", f"--out={tmp_path / 'out'}", *args], capsys)
    assert code == 1 and line.startswith("lerobot-prune convert: error: ")
    for text in expected:
        assert text in line, (text, line)
    assert not (tmp_path / "out").exists()  # nothing written


def test_out_refusals(tiny_base_checkpoint, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    (tmp_path / "existing").mkdir()
    (tmp_path / "existing" / "config.json").write_text("{}")
    for out, expected in [
        (tiny_base_checkpoint, "is the base checkpoint folder or inside it"),
        (tiny_base_checkpoint / "sub", "is the base checkpoint folder or inside it"),
        (tiny_base_checkpoint.parent, "contains the base checkpoint"),
        (tmp_path / "file", "is an existing file"),
        (tmp_path / "existing", "exists; pass --overwrite=true"),
    ]:
        code, line = _run(["convert", f"--base={tiny_base_checkpoint}", f"--out={out}"], capsys)
        assert code == 1 and f"out={out}" in line and expected in line, line
    assert not (tiny_base_checkpoint / "sub").exists()


def test_unknown_pruning_type_in_a_checkpoint_lists_the_valid_ones(tiny_base_checkpoint, tmp_path, capsys):
    from lerobot.configs import PreTrainedConfig

    from lerobot_prune import make_pruning_config
    from lerobot_prune.tools.cli import one_line
    from lerobot_prune.tools.convert import convert

    ckpt = convert(tiny_base_checkpoint, tmp_path / "ckpt", make_pruning_config("fastv", keep_ratio=0.5))
    _set_pruning_type(ckpt, "fastvv")
    with pytest.raises(Exception) as info:  # what LeRobot's --policy.path loading raises
        PreTrainedConfig.from_pretrained(ckpt)
    assert "pruning.type='fastvv' is not a strategy" in one_line(info.value) and VALID_TYPES in one_line(
        info.value
    )
    code, line = _run(["calibrate", f"--policy_path={ckpt}", "--env_type=pusht", "--frames=2"], capsys)
    assert code == 1 and "pruning.type='fastvv'" in line and VALID_TYPES in line


def test_negative_empty_cameras(tmp_path, capsys):
    code, line = _run(["init-tiny", f"--out={tmp_path / 'tiny'}", "--empty_cameras=-1"], capsys)
    assert code == 1 and "empty_cameras=-1 must be an integer >= 0" in line
    from conftest import config_kwargs

    from lerobot_policy_prune.pruned_pi0.configuration_pruned_pi0 import PrunedPI0Config

    with pytest.raises(ValueError, match="empty_cameras=-2 must be an integer >= 0"):
        PrunedPI0Config(empty_cameras=-2, **config_kwargs(1))


def test_policy_type_of_another_family_names_the_right_one(tiny_base_checkpoint):
    from lerobot_policy_prune.saved_config import load_saved_config

    with pytest.raises(
        ValueError, match="is a 'pi0' checkpoint, which loads as --policy.type=pruned_pi0, not pruned_pi05"
    ):
        load_saved_config(tiny_base_checkpoint, "pruned_pi05", [])


def test_the_real_command_prints_no_traceback(tiny_base_checkpoint, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "lerobot_prune.tools.cli", "convert", f"--base={tiny_base_checkpoint}",
         f"--out={tmp_path / 'out'}", "--pruning.type=adp", "--pruning.split=[0.4,nan]"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("lerobot-prune convert: error: pruning.split=[0.4, nan]")
    )
