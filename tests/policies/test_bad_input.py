"""Bad configuration and inputs fail with messages that name the value and what is valid."""

import subprocess
import sys

import pytest
import torch
from conftest import config_kwargs, make_pruned

from lerobot_policy_prune.pruned_pi0.configuration_pruned_pi0 import PrunedPI0Config
from lerobot_prune import make_pruning_config
from lerobot_prune.families.paligemma.arch import TINY_ARCH


def test_unknown_strategy_lists_known_ones():
    with pytest.raises(
        ValueError, match="Unknown pruning strategy 'fastvv'; known strategies: none, compact"
    ):
        make_pruning_config("fastvv")


def test_unknown_strategy_on_the_lerobot_cli():
    result = subprocess.run(
        [sys.executable, "-m", "lerobot.scripts.lerobot_eval", "--policy.discover_packages_path=lerobot_policy_prune",
         "--policy.type=pruned_pi0", "--policy.pruning.type=fastvv", "--env.type=pusht"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert "invalid choice: 'fastvv'" in result.stderr and "'fastv'" in result.stderr


@pytest.mark.parametrize("ratio", [0.0, -0.5, 1.5])
def test_keep_ratio_outside_unit_interval(ratio):
    with pytest.raises(ValueError, match=rf"keep_ratio={ratio} is outside \(0, 1\]"):
        make_pruning_config("fastv", keep_ratio=ratio)


@pytest.mark.parametrize("layer", [0, 4, 9])
def test_prune_layer_outside_model(layer):
    with pytest.raises(ValueError, match=rf"layer={layer} is outside \[1, 3\] .*4 VLM layers"):
        PrunedPI0Config(pruning=make_pruning_config("fastv", layer=layer), arch_override=dict(TINY_ARCH),
                        **config_kwargs(1))  # fmt: skip


def test_bad_fallback_and_arch_keys():
    with pytest.raises(
        ValueError, match="fallback='ignore' is not valid; choose one of \\('raise', 'full_vision'\\)"
    ):
        make_pruning_config("none", fallback="ignore")
    with pytest.raises(ValueError, match="unknown: \\['depht'\\]"):
        PrunedPI0Config(arch_override={**TINY_ARCH, "depht": 2}, **config_kwargs(1))


def test_unknown_camera_key_fails_before_the_model_runs():
    policy = make_pruned("fastv", num_cameras=1, keep_ratio=0.5)
    batch = {"observation.images.front": torch.rand(1, 3, 224, 224), "observation.state": torch.zeros(1, 2),
             "observation.language.tokens": torch.zeros(1, 48, dtype=torch.long),
             "observation.language.attention_mask": torch.ones(1, 48, dtype=torch.bool)}  # fmt: skip
    with pytest.raises(
        ValueError, match=r"\['observation.images.front'\] are not cameras of this policy.*cam0.*rename_map"
    ):
        policy.predict_action_chunk(batch)
    assert not policy.report.calls


def test_fallback_runs_full_vision_and_counts_the_failure():
    policy = make_pruned("fastv", num_cameras=1, keep_ratio=0.5, fallback="full_vision")

    def broken(view):
        raise RuntimeError("boom")

    policy.model.pruner.select = broken
    from conftest import model_inputs

    policy.model.sample_actions(**model_inputs(1, 1))
    assert policy.model.last_trace.fallback and policy.model.fallback_count == 1
    assert policy.model.last_trace.kept_per_camera.tolist() == [[256]]
    policy.model.pruner.config.fallback = "raise"
    with pytest.raises(RuntimeError, match="boom"):
        policy.model.sample_actions(**model_inputs(1, 1))


def test_fastv_with_an_empty_prompt_says_so():
    from conftest import model_inputs

    policy = make_pruned("fastv", num_cameras=1, keep_ratio=0.5, compact=True)
    with pytest.raises(ValueError, match="'last_text' needs a language token in every sample"):
        policy.model.sample_actions(**model_inputs(1, 1, prompt_lengths=[0]))


@pytest.mark.parametrize(
    "strategy,fields,message",
    [
        ("dtp", {"tau": -0.5}, "pruning.tau=-0.5 must be > 0"),
        ("vla_pruner", {"gamma": 1.5}, r"pruning.gamma=1.5 is outside \(0.0, 1.0\]"),
        ("vla_pruner", {"gamma": 0.0}, "pruning.gamma=0.0 is outside"),
        ("vla_pruner", {"window": 0}, "pruning.window=0 must be >= 1"),
        ("vla_pruner", {"weighting": "newest"}, "pruning.weighting='newest' is not valid; choose one of"),
        ("ties", {"trust": "medium"}, "pruning.trust='medium' is not valid"),
        ("adp", {"split": [-1.0, 1.0]}, r"pruning.split=\[-1.0, 1.0\] .* must be finite numbers >= 0"),
        ("adp", {"split": [float("nan"), 0.6]}, r"pruning.split=\[nan, 0.6\] .* must be finite numbers >= 0"),
        ("adp", {"decision": "median"}, "decision='median' is not valid"),
        ("dtp", {"region_ratio": 0.0}, r"pruning.region_ratio=0.0 is outside \(0.0, 1.0\]"),
    ],
)
def test_bad_strategy_values_name_the_field(strategy, fields, message):
    with pytest.raises(ValueError, match=message):
        make_pruning_config(strategy, **fields)


@pytest.mark.parametrize(
    "strategy,fields,message",
    [
        ("dtp", {"layers": [1, 7]}, r"pruning.layers=\[1, 7\] has layers \[7\] outside \[0, 3\]"),
        ("vla_pruner", {"action_layers": [9]}, "pruning.action_layers"),
        ("sparsevlm", {"layer": 4}, r"pruning.layer=4 is outside \[1, 3\]"),
        ("ties_middle", {"layer": 0}, r"pruning.layer=0 is outside \[1, 3\]"),
    ],
)
def test_layers_outside_the_model_fail_when_the_config_is_built(strategy, fields, message):
    with pytest.raises(ValueError, match=message):
        PrunedPI0Config(
            pruning=make_pruning_config(strategy, **fields), arch_override=dict(TINY_ARCH), **config_kwargs(2)
        )


@pytest.mark.parametrize(
    "fields,message",
    [
        ({"split": [0.2, 0.3, 0.5]}, r"split=\[0.2, 0.3, 0.5\] has 3 weights for 2 cameras"),
        (
            {"camera_weights": {"observation.images.front": 1.0}},
            r"names \['observation.images.front'\] are not cameras",
        ),
        (
            {"camera_weights": {"observation.images.cam0": 1.0}},
            r"lacks cameras \['observation.images.cam1'\]",
        ),
    ],
)
def test_quota_weights_that_do_not_match_the_cameras(fields, message):
    with pytest.raises(ValueError, match=message):
        make_pruned("adp", num_cameras=2, gate=False, **fields)


def test_calibrate_needs_one_frame_source(tmp_path):
    from lerobot_prune.tools.calibrate import CalibrateArgs, calibrate

    with pytest.raises(ValueError, match="exactly one frame source"):
        calibrate(CalibrateArgs(policy_path=str(tmp_path)))
    with pytest.raises(ValueError, match="is not a checkpoint folder"):
        calibrate(CalibrateArgs(policy_path=str(tmp_path / "absent"), env_type="pusht"))


def test_degenerate_settings_warn_once(caplog):
    from test_observation_checks import good_batch

    with caplog.at_level("WARNING"):
        make_pruned("fastv", num_cameras=1, keep_ratio=0.004)
        make_pruned("dtp", num_cameras=1, layers=[1, 2], region_ratio=0.01)
    assert "keep_ratio=0.004 keeps 1 of 256 visual tokens per camera" in caplog.text
    assert "region_ratio=0.01 makes DTP's prompt region 3 of 256 tokens" in caplog.text

    def episodes(policy, calls: int, count: int) -> str:
        caplog.clear()
        with caplog.at_level("WARNING"):
            for _ in range(count):
                for _ in range(calls):
                    policy.predict_action_chunk(good_batch())
                policy.reset()
        return caplog.text

    warned = episodes(make_pruned("vla_pruner", num_cameras=1, keep_ratio=0.5, window=3), calls=2, count=2)
    assert warned.count("pruning.window=3 is longer than this episode (2 policy calls)") == 1
    assert "pruning.window" not in episodes(
        make_pruned("vla_pruner", num_cameras=1, window=3), calls=4, count=1
    )
    assert "pruning.window" not in episodes(
        make_pruned("vla_pruner_prefill_only", num_cameras=1), calls=2, count=1
    )
