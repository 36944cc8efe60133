"""init-tiny -> convert -> from_pretrained keeps the base policy's actions; bad checkpoints fail early."""

import json
import shutil

import pytest
import torch
from conftest import make_base, model_inputs
from lerobot.policies.pi0 import modeling_pi0
from lerobot.policies.pi0.modeling_pi0 import PI0Policy

from lerobot_policy_prune.pruned_pi0.modeling_pruned_pi0 import PrunedPI0Policy
from lerobot_prune import make_pruning_config
from lerobot_prune.backbones.arch import TINY_ARCH, backbone_sizes
from lerobot_prune.convert import convert


def _load_base(path):
    with backbone_sizes(modeling_pi0, TINY_ARCH):
        return PI0Policy.from_pretrained(path).eval()


def test_init_tiny_convert_load_reproduces_base(tiny_base_checkpoint, tmp_path):
    out = convert(tiny_base_checkpoint, tmp_path / "pruned", make_pruning_config("none"))
    pruned = PrunedPI0Policy.from_pretrained(out)
    base = _load_base(tiny_base_checkpoint)
    assert pruned.config.chunk_size == base.config.chunk_size == 10
    assert pruned.config.empty_cameras == 1 and pruned.config.arch_override == TINY_ARCH
    assert pruned.config.tokenizer_name == str(tiny_base_checkpoint / "tokenizer")
    inputs = model_inputs(1, 2, missing=[(1,)])
    inputs["noise"] = torch.randn(1, 10, 32)
    assert torch.equal(pruned.model.sample_actions(**inputs), base.model.sample_actions(**inputs))


def test_checkpoint_saved_by_pi0_policy_converts_and_loads(tmp_path):
    base = make_base(num_cameras=2)
    base.save_pretrained(tmp_path / "base")
    from lerobot_policy_prune.pruned_pi0.processor_pruned_pi0 import make_pi0_family_processors
    from lerobot_prune.tiny import make_tiny_tokenizer

    pre, post = make_pi0_family_processors(base.config, None, str(make_tiny_tokenizer(tmp_path / "tok")))
    pre.save_pretrained(tmp_path / "base")
    post.save_pretrained(tmp_path / "base")
    out = convert(tmp_path / "base", tmp_path / "fastv", make_pruning_config("fastv", keep_ratio=0.25),
                  arch_override=TINY_ARCH)  # fmt: skip
    pruned = PrunedPI0Policy.from_pretrained(out)
    assert pruned.config.pruning.type == "fastv" and pruned.config.pruning.keep_ratio == 0.25
    for key, value in base.state_dict().items():
        assert torch.equal(pruned.state_dict()[key], value), key


def test_folder_without_weights_raises(tiny_base_checkpoint, tmp_path):
    out = convert(tiny_base_checkpoint, tmp_path / "pruned", make_pruning_config("none"))
    (out / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="no model.safetensors.*randomly initialised"):
        PrunedPI0Policy.from_pretrained(out)


def test_weights_of_another_architecture_raise(tiny_base_checkpoint, tmp_path):
    out = convert(tiny_base_checkpoint, tmp_path / "pruned", make_pruning_config("none"))
    config = json.loads((out / "config.json").read_text())
    config["arch_override"]["width"] = 128
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="vlm width: 64 in the weights vs 128 in the config"):
        PrunedPI0Policy.from_pretrained(out)


def test_base_checkpoint_of_another_policy_type_raises(tmp_path):
    (tmp_path / "act").mkdir()
    (tmp_path / "act" / "config.json").write_text(json.dumps({"type": "act"}))
    with pytest.raises(ValueError, match="'act' checkpoint; convert supports \\['pi0', 'pi05', 'pruned_pi0'"):
        convert(tmp_path / "act", tmp_path / "out", make_pruning_config("none"))
    assert not (tmp_path / "out").exists()


def test_convert_with_local_tokenizer_rewrites_processor(tiny_base_checkpoint, tmp_path):
    tok = tmp_path / "my_tokenizer"
    shutil.copytree(tiny_base_checkpoint / "tokenizer", tok)
    out = convert(tiny_base_checkpoint, tmp_path / "p", make_pruning_config("none"), tokenizer=str(tok))
    steps = json.loads((out / "policy_preprocessor.json").read_text())["steps"]
    assert [s["config"]["tokenizer_name"] for s in steps if s["registry_name"] == "tokenizer_processor"] == [
        str(tok)
    ]


def test_pi05_init_tiny_convert_load_reproduces_base(tmp_path):
    from lerobot.policies.pi05 import modeling_pi05
    from lerobot.policies.pi05.modeling_pi05 import PI05Policy

    from lerobot_policy_prune.pruned_pi05.modeling_pruned_pi05 import PrunedPI05Policy
    from lerobot_prune.tiny import init_tiny

    base_dir = init_tiny(tmp_path / "pi05", policy_type="pi05", empty_cameras=1)
    out = convert(base_dir, tmp_path / "pruned", make_pruning_config("none"))
    assert json.loads((out / "config.json").read_text())["type"] == "pruned_pi05"
    pruned = PrunedPI05Policy.from_pretrained(out)
    with backbone_sizes(modeling_pi05, TINY_ARCH):
        base = PI05Policy.from_pretrained(base_dir).eval()
    inputs = model_inputs(1, 2, missing=[(1,)], family="pi05")
    inputs["noise"] = torch.randn(1, 10, 32)
    assert torch.equal(pruned.model.sample_actions(**inputs), base.model.sample_actions(**inputs))
    with pytest.raises(TypeError, match="not pruned_pi0"):
        PrunedPI0Policy.from_pretrained(out)
