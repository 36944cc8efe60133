"""pruned_smolvla end to end: init-tiny -> convert -> from_pretrained, bad checkpoints, the real lerobot-eval."""

import json
import os
import shutil
import subprocess

import pytest
import torch
from conftest import model_inputs
from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy

from lerobot_policy_prune.pruned_pi0.modeling_pruned_pi0 import PrunedPI0Policy
from lerobot_policy_prune.pruned_smolvla.modeling_pruned_smolvla import PrunedSmolVLAPolicy
from lerobot_prune import make_pruning_config
from lerobot_prune.families.tiny import init_tiny
from lerobot_prune.tools.convert import convert

ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def smolvla_base(tmp_path_factory):
    """A tiny `smolvla` checkpoint for PushT written by init-tiny's code path (one padded camera)."""
    return init_tiny(tmp_path_factory.mktemp("tiny") / "smolvla", policy_type="smolvla", empty_cameras=1)


def _inputs():
    inputs = model_inputs(1, 2, missing=[(1,)], prompt_lengths=[6], family="smolvla")
    inputs["noise"] = torch.randn(1, 10, 32, generator=torch.Generator().manual_seed(4))
    return inputs


def test_init_tiny_convert_load_reproduces_base(smolvla_base, tmp_path):
    out = convert(smolvla_base, tmp_path / "pruned", make_pruning_config("none"))
    assert json.loads((out / "config.json").read_text())["type"] == "pruned_smolvla"
    pruned = PrunedSmolVLAPolicy.from_pretrained(out)
    base = SmolVLAPolicy.from_pretrained(smolvla_base).eval()
    assert pruned.config.vlm_model_name == str(smolvla_base / "tiny_smolvlm")
    assert pruned.config.empty_cameras == 1 and pruned.config.chunk_size == 10
    for key, value in base.state_dict().items():
        assert torch.equal(pruned.state_dict()[key], value), key
    assert torch.equal(pruned.model.sample_actions(**_inputs()), base.model.sample_actions(**_inputs()))
    assert pruned.model.backbone_info == {
        "type": "smolvla",
        "vlm_depth": 4,
        "width": 64,
        "tokens_per_camera": 64,
    }
    with pytest.raises(TypeError, match="not pruned_pi0"):
        PrunedPI0Policy.from_pretrained(out)


def test_converted_fastv_prunes_and_keeps_state_and_language(smolvla_base, tmp_path):
    out = convert(smolvla_base, tmp_path / "fastv", make_pruning_config("fastv", keep_ratio=0.25, layer=2))
    pruned = PrunedSmolVLAPolicy.from_pretrained(out)
    pruned.model.sample_actions(**_inputs())
    trace = pruned.model.last_trace
    # one real camera of 64 tokens (the padded one has none), 48 language tokens, 1 state token
    assert trace.kept_per_camera.tolist() == [[16, 0]]
    # layers >= K hold a static width of 0.25 x 128 visual slots (the padded camera's share masked out)
    assert trace.prefix_lengths == [2 * 64 + 48 + 1] * 2 + [32 + 48 + 1] * 2


def test_weights_of_another_depth_raise(smolvla_base, tmp_path):
    out = convert(smolvla_base, tmp_path / "pruned", make_pruning_config("none"))
    config = json.loads((out / "config.json").read_text())
    config["num_vlm_layers"] = 2
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="vlm depth: 4 in the weights vs 2 in the config"):
        PrunedSmolVLAPolicy.from_pretrained(out)


def test_folder_without_weights_raises(smolvla_base, tmp_path):
    out = convert(smolvla_base, tmp_path / "pruned", make_pruning_config("none"))
    (out / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="no model.safetensors.*randomly initialised"):
        PrunedSmolVLAPolicy.from_pretrained(out)


def test_pi0_options_are_refused_for_smolvla(smolvla_base, tmp_path):
    with pytest.raises(ValueError, match="SmolVLA checkpoint.*tokenizer='tok'"):
        convert(smolvla_base, tmp_path / "out", make_pruning_config("none"), tokenizer="tok")
    assert not (tmp_path / "out").exists()


def test_layer_beyond_the_truncated_vlm_fails_at_config_time():
    from conftest import tiny_smolvlm_dir

    from lerobot_policy_prune.pruned_smolvla.configuration_pruned_smolvla import PrunedSmolVLAConfig

    with pytest.raises(
        ValueError, match=r"pruning.layer=3 is outside \[1, 2\] for this backbone \(3 VLM layers\)"
    ):
        PrunedSmolVLAConfig(
            vlm_model_name=tiny_smolvlm_dir(), num_vlm_layers=3, pruning=make_pruning_config("fastv", layer=3)
        )


@pytest.mark.sim
def test_pruned_smolvla_runs_in_lerobot_eval_from_the_cli(tmp_path):
    prune = shutil.which("lerobot-prune")
    steps = [
        [prune, "init-tiny", f"--out={tmp_path / 'base'}", "--policy_type=smolvla", "--empty_cameras=1"],
        [prune, "convert", f"--base={tmp_path / 'base'}", f"--out={tmp_path / 'ckpt'}",
         "--pruning.type=fastv", "--pruning.keep_ratio=0.25", "--pruning.compact=true"],
        [shutil.which("lerobot-eval"), f"--policy.path={tmp_path / 'ckpt'}", "--env.type=pusht",
         "--env.episode_length=20", "--eval.n_episodes=2", "--eval.batch_size=2", "--eval.use_async_envs=false",
         "--policy.device=cpu", f"--output_dir={tmp_path / 'eval'}"],
    ]  # fmt: skip
    for command in steps:
        done = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=600, cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
    info = json.loads((tmp_path / "eval" / "eval_info.json").read_text())
    report = json.loads((tmp_path / "eval" / "pruning_report.json").read_text())
    assert info["overall"]["n_episodes"] == 2
    assert report["summary"]["strategy"] == "fastv" and report["summary"]["calls"] == 2
    # PushT's one camera (64 tokens -> 16 kept); the padded camera is compacted away.
    assert all(call["kept_visual_per_camera"] == [[16, 0], [16, 0]] for call in report["calls"])
    assert report["summary"]["flop_ratio"] < 1.0


def test_select_action_matches_upstream_and_reports_each_chunk(smolvla_base, tmp_path):
    pruned = PrunedSmolVLAPolicy.from_pretrained(
        convert(smolvla_base, tmp_path / "p", make_pruning_config("none"))
    )
    base = SmolVLAPolicy.from_pretrained(smolvla_base).eval()
    g = torch.Generator().manual_seed(2)
    batch = {"observation.image": torch.rand(1, 3, 96, 96, generator=g), "observation.state": torch.randn(1, 2),
             "observation.language.tokens": torch.tensor([[2, 40, 41]]),
             "observation.language.attention_mask": torch.ones(1, 3, dtype=torch.bool)}  # fmt: skip
    torch.manual_seed(7)
    expected = [base.select_action(dict(batch)) for _ in range(12)]
    torch.manual_seed(7)
    actions = [pruned.select_action(dict(batch)) for _ in range(12)]
    for a, b in zip(actions, expected, strict=True):
        assert torch.equal(a, b)
    assert len(pruned.report.calls) == 2  # chunks of 10 actions: steps 0 and 10
    assert pruned.report.calls[0]["kept_visual_per_camera"] == [[64, 0]]


def test_init_tiny_arch_sets_smolvlm_sizes_and_refuses_pi0_only_keys(tmp_path):
    from transformers import AutoConfig

    out = init_tiny(tmp_path / "sized", policy_type="smolvla", env_type="metaworld",
                    arch={"width": 96, "num_heads": 6, "vision_depth": 2})  # fmt: skip
    vlm = AutoConfig.from_pretrained(out / "tiny_smolvlm")
    assert (vlm.text_config.hidden_size, vlm.text_config.num_attention_heads) == (96, 6)
    assert vlm.vision_config.num_hidden_layers == 2
    with pytest.raises(
        ValueError, match=r"\['expert_width'\] do not apply to SmolVLA; valid keys: .*vision_width"
    ):
        init_tiny(tmp_path / "bad", policy_type="smolvla", arch={"expert_width": 64})


def test_a_vlm_path_that_is_no_folder_is_refused_by_name(tmp_path):
    from lerobot_policy_prune.pruned_smolvla.configuration_pruned_smolvla import PrunedSmolVLAConfig

    missing = "checkpoints/not_here/vlm"
    with pytest.raises(
        ValueError, match=r"vlm_model_name='checkpoints/not_here/vlm' is a path but not a folder"
    ):
        PrunedSmolVLAConfig(vlm_model_name=missing)
