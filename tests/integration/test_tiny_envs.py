"""`init-tiny --env_type`: tiny π0 checkpoints shaped like each LeRobot sim's observations and actions."""

import json
import shutil
import subprocess

import pytest
from lerobot.envs.configs import EnvConfig
from lerobot.envs.utils import env_to_policy_features
from safetensors.torch import load_file

from lerobot_prune.families.tiny import ENV_TYPES, env_stats, init_tiny_pi0

# (camera key, state/action size) of each sim as the policy sees it.
EXPECTED = {"aloha": ("observation.images.top", 14), "metaworld": ("observation.image", 4)}


@pytest.mark.parametrize("env_type", ENV_TYPES)
def test_stats_match_the_sims_state_and_action_shapes(env_type):
    features = env_to_policy_features(EnvConfig.get_choice_class(env_type)())
    stats = env_stats(env_type)
    for key in ("observation.state", "action"):
        assert {"mean", "std", "min", "max"} <= set(stats[key])
        assert all(tuple(t.shape) == features[key].shape for t in stats[key].values())
        assert (stats[key]["std"] > 0).all() and (stats[key]["min"] < stats[key]["max"]).all()


def test_metaworld_checkpoint_has_its_features_and_normaliser_stats(tmp_path):
    camera, dim = EXPECTED["metaworld"]
    ckpt = init_tiny_pi0(tmp_path / "pi0", env_type="metaworld", chunk_size=20, n_action_steps=20)
    config = json.loads((ckpt / "config.json").read_text())
    assert config["type"] == "pi0" and config["chunk_size"] == 20
    assert config["input_features"] == {
        "observation.state": {"type": "STATE", "shape": [dim]},
        camera: {"type": "VISUAL", "shape": [3, 480, 480]},
    }
    assert config["output_features"] == {"action": {"type": "ACTION", "shape": [dim]}}
    (normalizer,) = ckpt.glob("policy_preprocessor_step_*_normalizer_processor.safetensors")
    saved = load_file(normalizer)
    assert saved["observation.state.std"].shape == (dim,) and saved["action.mean"].shape == (dim,)


def test_unknown_env_type_names_the_valid_ones_before_writing(tmp_path):
    with pytest.raises(ValueError, match=r"env_type='libero'.*pusht, aloha, metaworld"):
        init_tiny_pi0(tmp_path / "pi0", env_type="libero")
    assert not (tmp_path / "pi0").exists()


def test_init_tiny_cli_takes_env_type(tmp_path):
    command = [shutil.which("lerobot-prune"), "init-tiny", f"--out={tmp_path / 'pi0'}", "--env_type=aloha"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    camera, dim = EXPECTED["aloha"]
    config = json.loads((tmp_path / "pi0" / "config.json").read_text())
    assert config["input_features"][camera]["shape"] == [3, 480, 640]
    assert config["output_features"]["action"]["shape"] == [dim]
