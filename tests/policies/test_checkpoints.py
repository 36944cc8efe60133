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
from lerobot_prune.families.paligemma.arch import TINY_ARCH, backbone_sizes
from lerobot_prune.families.paligemma.embedded_tokenizer import EMBEDDED_TOKENIZER, STEP_NAME
from lerobot_prune.tools.convert import convert


def _load_base(path):
    with backbone_sizes(modeling_pi0, TINY_ARCH):
        return PI0Policy.from_pretrained(path).eval()


def test_init_tiny_convert_load_reproduces_base(tiny_base_checkpoint, tmp_path):
    out = convert(tiny_base_checkpoint, tmp_path / "pruned", make_pruning_config("none"))
    pruned = PrunedPI0Policy.from_pretrained(out)
    base = _load_base(tiny_base_checkpoint)
    assert pruned.config.chunk_size == base.config.chunk_size == 10
    assert pruned.config.empty_cameras == 1 and pruned.config.arch_override == TINY_ARCH
    assert pruned.config.tokenizer_name == EMBEDDED_TOKENIZER  # the tokenizer travels in the preprocessor
    inputs = model_inputs(1, 2, missing=[(1,)])
    inputs["noise"] = torch.randn(1, 10, 32)
    assert torch.equal(pruned.model.sample_actions(**inputs), base.model.sample_actions(**inputs))


def test_checkpoint_saved_by_pi0_policy_converts_and_loads(tmp_path):
    base = make_base(num_cameras=2)
    base.save_pretrained(tmp_path / "base")
    from lerobot_policy_prune.pruned_pi0.processor_pruned_pi0 import make_pi0_family_processors
    from lerobot_prune.families.tiny import make_tiny_tokenizer

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


def _tokenizer_steps(out):
    return [
        s
        for s in json.loads((out / "policy_preprocessor.json").read_text())["steps"]
        if "token" in s["registry_name"]
    ]


def _preprocess(folder, config=None):
    """Loads the policy and LeRobot's processors from `folder` and tokenizes one PushT-like frame."""
    from lerobot.policies.factory import make_pre_post_processors

    policy = PrunedPI0Policy.from_pretrained(folder)
    pre, _ = make_pre_post_processors(config or policy.config, pretrained_path=str(folder))
    frame = {
        "observation.image": torch.rand(3, 96, 96),
        "observation.state": torch.zeros(2),
        "task": "push the t",
    }
    return pre(frame)["observation.language.tokens"][0]


def test_convert_with_local_tokenizer_copies_it_into_the_checkpoint(tiny_base_checkpoint, tmp_path):
    tok = tmp_path / "my_tokenizer"
    shutil.copytree(tiny_base_checkpoint / "tokenizer", tok)
    out = convert(tiny_base_checkpoint, tmp_path / "p", make_pruning_config("none"), tokenizer=str(tok))
    (step,) = _tokenizer_steps(out)
    assert step["registry_name"] == STEP_NAME and "tokenizer_name" not in step["config"]
    assert (out / step["state_file"]).is_file()
    shutil.rmtree(tok)  # the checkpoint holds its own copy
    expected = _preprocess(convert(tiny_base_checkpoint, tmp_path / "plain", make_pruning_config("none")))
    assert torch.equal(_preprocess(out), expected)


def test_converted_checkpoint_is_movable(tmp_path):
    """Convert, move the folder elsewhere, delete the base: LeRobot still loads policy and processors."""
    from lerobot_prune.families.tiny import init_tiny_pi0

    base = init_tiny_pi0(tmp_path / "base", empty_cameras=1)
    expected = _preprocess(convert(base, tmp_path / "first", make_pruning_config("none")))
    out = convert(base, tmp_path / "ckpt", make_pruning_config("fastv", keep_ratio=0.25))
    moved = shutil.move(str(out), str(tmp_path / "elsewhere" / "moved"))
    shutil.rmtree(base)
    for path in (tmp_path / "elsewhere" / "moved").iterdir():
        if path.suffix == ".json":
            assert str(base) not in path.read_text(), path.name
    assert torch.equal(_preprocess(moved), expected)
    # Processors built from the config (no saved pipeline) find the stored tokenizer through pretrained_path.
    from lerobot.policies.factory import make_pre_post_processors

    config = PrunedPI0Policy.from_pretrained(moved).config
    config.pretrained_path = moved
    pre, _ = make_pre_post_processors(config)
    frame = {
        "observation.image": torch.rand(3, 96, 96),
        "observation.state": torch.zeros(2),
        "task": "push the t",
    }
    assert torch.equal(pre(frame)["observation.language.tokens"][0], expected)


def test_weights_are_copied_unless_linking_is_asked_for(tiny_base_checkpoint, tmp_path):
    copied = convert(tiny_base_checkpoint, tmp_path / "copied", make_pruning_config("none"))
    linked = convert(
        tiny_base_checkpoint, tmp_path / "linked", make_pruning_config("none"), link_weights=True
    )
    base_weights = (tiny_base_checkpoint / "model.safetensors").stat()
    assert (copied / "model.safetensors").stat().st_ino != base_weights.st_ino
    assert (linked / "model.safetensors").stat().st_ino == base_weights.st_ino


def test_out_that_could_lose_data_is_refused_before_writing(tmp_path):
    from lerobot_prune.families.tiny import init_tiny_pi0

    base = init_tiny_pi0(tmp_path / "ws" / "base")
    before = {p.name: p.read_bytes() for p in base.iterdir() if p.is_file()}
    (tmp_path / "a_file").write_text("x")
    none = make_pruning_config("none")
    for out, message in [
        (base, "is the base checkpoint folder or inside it"),
        (base / "sub", "is the base checkpoint folder or inside it"),
        (tmp_path / "ws", "contains the base checkpoint"),
        (tmp_path / "a_file", "is an existing file"),
    ]:
        with pytest.raises(ValueError, match=message):
            convert(base, out, none, overwrite=True)
    assert {p.name: p.read_bytes() for p in base.iterdir() if p.is_file()} == before
    assert not (base / "sub").exists()


def test_existing_out_needs_overwrite_and_is_replaced_by_a_clean_folder(tiny_base_checkpoint, tmp_path):
    out = convert(tiny_base_checkpoint, tmp_path / "ckpt", make_pruning_config("fastv", keep_ratio=0.5))
    (out / "ties_calibration.json").write_text("{}")
    with pytest.raises(ValueError, match="exists; pass --overwrite=true"):
        convert(tiny_base_checkpoint, out, make_pruning_config("none"))
    convert(tiny_base_checkpoint, out, make_pruning_config("none"), overwrite=True)
    assert not (out / "ties_calibration.json").exists()
    assert json.loads((out / "config.json").read_text())["pruning"]["type"] == "none"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no temporary folders left
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    with pytest.raises(ValueError, match="is not a checkpoint folder"):
        convert(tiny_base_checkpoint, tmp_path / "notes", make_pruning_config("none"), overwrite=True)


def test_interrupted_convert_leaves_the_old_checkpoint(tiny_base_checkpoint, tmp_path, monkeypatch):
    from lerobot_prune.families.paligemma import convert_options

    out = convert(tiny_base_checkpoint, tmp_path / "ckpt", make_pruning_config("fastv", keep_ratio=0.5))
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(convert_options, "embed_tokenizer", interrupted)  # after the files are copied
    with pytest.raises(KeyboardInterrupt):
        convert(tiny_base_checkpoint, out, make_pruning_config("none"), overwrite=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_pi05_init_tiny_convert_load_reproduces_base(tmp_path):
    from lerobot.policies.pi05 import modeling_pi05
    from lerobot.policies.pi05.modeling_pi05 import PI05Policy

    from lerobot_policy_prune.pruned_pi05.modeling_pruned_pi05 import PrunedPI05Policy
    from lerobot_prune.families.tiny import init_tiny

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


@pytest.mark.parametrize("family", ["pi0", "pi05", "smolvla"])
def test_policy_type_form_adopts_the_saved_config(tmp_path, monkeypatch, family):
    """`--policy.type=pruned_<family> --policy.pretrained_path=<checkpoint>`: the config built from class
    defaults and the flags becomes the checkpoint's saved config plus only the flags typed."""
    import sys

    from conftest import FAMILIES

    from lerobot_prune.families.tiny import init_tiny

    base = init_tiny(tmp_path / "base", policy_type=family, empty_cameras=1, chunk_size=6, n_action_steps=6)
    pruned = convert(base, tmp_path / "pruned", make_pruning_config("fastv", keep_ratio=0.25, compact=True))
    config_cls = FAMILIES[family][0]
    for checkpoint in (base, pruned):
        argv = ["lerobot-eval", f"--policy.type=pruned_{family}", f"--policy.pretrained_path={checkpoint}",
                "--policy.pruning.type=fastv", "--policy.pruning.keep_ratio=0.125", "--policy.n_action_steps=3"]  # fmt: skip
        monkeypatch.setattr(sys, "argv", argv)
        config = config_cls(pretrained_path=checkpoint, n_action_steps=3,
                            pruning=make_pruning_config("fastv", keep_ratio=0.125))  # fmt: skip
        assert (config.chunk_size, config.n_action_steps, config.empty_cameras) == (6, 3, 1)
        assert config.pruning.keep_ratio == 0.125 and config.pruning.compact == (checkpoint == pruned)
        assert len(config.input_features) == 3  # PushT's camera, the padded one, the state
        assert str(config.pretrained_path) == str(checkpoint)
        if family != "smolvla":
            assert config.arch_override == TINY_ARCH
        else:
            assert config.vlm_model_name.startswith(str(base))
    monkeypatch.setattr(sys, "argv", ["python"])  # any other way of building a config is untouched
    assert config_cls(pretrained_path=base).chunk_size == 50
