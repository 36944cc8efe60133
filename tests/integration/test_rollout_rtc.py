"""Where LeRobot's rollout and RTC paths treat policies by type: pruned types behave like their bases.

* RTC guidance (`RTCProcessor.denoise_step`) runs through the pruned model's denoiser and really steers
  the chunk toward the previous one; with nothing pruned it equals π0's guided chunk exactly.
* `rollout/context.py` skips its own `torch.compile` wrapper only when `policy.type in ("pi0", "pi05")`;
  `policy.type` is `nn.Module.type` (a method) in LeRobot 0.6.1, so no policy is skipped and
  `pruned_pi0` / `pruned_pi05` get exactly π0's / π0.5's decision (checked on LeRobot's real `build_rollout_context`).
"""

from pathlib import Path
from threading import Event

import pytest
import torch
from conftest import make_active, make_base, make_pruned, model_inputs
from lerobot.policies.rtc.configuration_rtc import RTCConfig

CAMERAS = 2


def _with_rtc(policy):
    policy.config.rtc_config = RTCConfig(enabled=True, execution_horizon=3)
    policy.init_rtc_processor()
    return policy


def _sample(policy, inputs, prev=None):
    kwargs = (
        {} if prev is None else {"prev_chunk_left_over": prev, "inference_delay": 2, "execution_horizon": 3}
    )
    return policy.model.sample_actions(**inputs, **kwargs)


@pytest.mark.parametrize("strategy", ["fastv", "vla_pruner"])
def test_rtc_guidance_steers_a_pruned_chunk_toward_the_previous_one(strategy):
    policy = _with_rtc(make_active(strategy, num_cameras=CAMERAS))
    inputs = model_inputs(1, CAMERAS)
    _sample(policy, inputs)  # vla_pruner prunes from its second call on
    free = _sample(policy, inputs)
    prev = torch.randn(4, 32, generator=torch.Generator().manual_seed(5)) * 3
    guided = _sample(policy, inputs, prev)
    pruned = policy.model.last_trace.kept_per_camera.sum() < policy.model.last_trace.valid_per_camera.sum()
    assert pruned, f"{strategy} kept every token, so this would not test RTC on a pruned prefix"
    assert not torch.allclose(free, guided)
    frozen = slice(0, 2)  # the inference_delay steps RTC pins to the previous chunk
    assert (guided[0, frozen] - prev[frozen]).abs().mean() < 0.5 * (
        free[0, frozen] - prev[frozen]
    ).abs().mean()


def test_rtc_with_nothing_pruned_equals_pi0():
    inputs = model_inputs(1, CAMERAS)
    prev = torch.randn(4, 32, generator=torch.Generator().manual_seed(5))
    base, pruned = _with_rtc(make_base(CAMERAS)), _with_rtc(make_pruned("none", num_cameras=CAMERAS))
    torch.testing.assert_close(_sample(pruned, inputs, prev), _sample(base, inputs, prev), rtol=0, atol=0)


def _compile_wrapped(checkpoint: Path, tmp_path: Path, monkeypatch) -> bool:
    """Builds LeRobot's rollout context with `use_torch_compile=True`; True if it wrapped predict_action_chunk."""
    from arms_helpers import ROBOT_ID
    from lerobot.configs import PreTrainedConfig
    from lerobot.policies.pi0 import modeling_pi0
    from lerobot.robots.so_follower import SO101FollowerConfig, so_follower
    from lerobot.rollout.configs import RolloutConfig
    from lerobot.rollout.context import build_rollout_context

    from lerobot_prune.families.paligemma.arch import TINY_ARCH, backbone_sizes
    from lerobot_prune.testing import PruneFakeCameraConfig
    from lerobot_prune.testing.fake_feetech import FakeFeetechMotorsBus, write_calibration_file

    monkeypatch.setattr(so_follower, "FeetechMotorsBus", FakeFeetechMotorsBus)  # fake hardware only
    calibration = write_calibration_file(tmp_path / "calibration", ROBOT_ID).parent
    robot = SO101FollowerConfig(port=f"/dev/fake_{checkpoint.name}", id=ROBOT_ID, calibration_dir=calibration,
                                cameras={"front": PruneFakeCameraConfig()})  # fmt: skip
    policy = PreTrainedConfig.from_pretrained(checkpoint)
    policy.pretrained_path = checkpoint
    cfg = RolloutConfig(robot=robot, policy=policy, use_torch_compile=True, task="pick up the cube",
                        play_sounds=False, return_to_initial_position=False)  # fmt: skip
    with backbone_sizes(modeling_pi0, TINY_ARCH if policy.type == "pi0" else None):
        context = build_rollout_context(cfg, Event())
    try:
        policy_obj = context.policy.policy
        assert policy_obj.config.compile_model  # the model-level compile both types share
        return "predict_action_chunk" in vars(policy_obj)
    finally:
        context.hardware.robot_wrapper.inner.disconnect()


def test_rollout_compile_wrapper_decision_for_pruned_types_equals_base_types(
    robot_checkpoint, tmp_path, monkeypatch
):
    base = robot_checkpoint.parent / "base"  # the tiny base checkpoint it was converted from
    assert _compile_wrapped(robot_checkpoint, tmp_path, monkeypatch) == _compile_wrapped(
        base, tmp_path, monkeypatch
    )
