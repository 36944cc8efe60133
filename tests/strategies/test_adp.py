"""ADP on the tiny π0: camera quotas (§5.3, §10.3), Φ without positions (§10.7), the gate in a policy loop."""

import pytest
import torch
from conftest import LANG_LEN, make_active, make_pruned, model_inputs

from lerobot_prune.strategies.adp import split_counts


@pytest.mark.parametrize("ratio,expected", [(0.5, [102, 154]), (0.3, [62, 92])])
def test_quota_rounding_matches_the_paper_example(ratio, expected):
    total = max(1, round(512 * ratio))
    assert split_counts(total, [0.4, 0.6]) == expected and sum(expected) == total


def test_per_camera_quotas_on_the_model_and_two_weights_for_three_cameras():
    policy = make_active("adp", num_cameras=2)
    policy.model.sample_actions(**model_inputs(1, 2))
    assert policy.model.last_trace.kept_per_camera.tolist() == [[102, 154]]
    policy = make_active("adp", num_cameras=3)  # 0.4 : 0.6 -> first camera 0.4, the others 0.3 each
    policy.model.sample_actions(**model_inputs(1, 3, missing=[(1,)]))
    # quotas over the valid cameras: 0.4 : 0.3 of 256 -> 146 : 110
    assert policy.model.last_trace.kept_per_camera.tolist() == [[146, 0, 110]]


def test_name_keyed_weights():
    names = {f"observation.images.cam{i}": w for i, w in enumerate([3.0, 1.0])}
    policy = make_active("adp", num_cameras=2, camera_weights=names)
    policy.model.sample_actions(**model_inputs(1, 2))
    assert policy.model.last_trace.kept_per_camera.tolist() == [[192, 64]]


def test_text_visual_scores_have_no_positional_dependence():
    policy = make_active("adp", num_cameras=1)
    inputs = model_inputs(1, 1, prompt_lengths=[10])
    policy.model.sample_actions(**inputs)
    signals = policy.model.last_view.signals
    scores = signals.text_visual_logits()
    perm = torch.randperm(256, generator=torch.Generator().manual_seed(0))
    signals.prefix.embs = torch.cat([signals.prefix.embs[:, perm], signals.prefix.embs[:, 256:]], dim=1)
    torch.testing.assert_close(signals.text_visual_logits(), scores[:, perm], atol=1e-5, rtol=1e-5)


def _batch(step: int, x: float) -> dict:
    g = torch.Generator().manual_seed(step)
    return {
        "observation.images.cam0": torch.rand(1, 3, 224, 224, generator=g),
        "observation.state": torch.tensor([[x, 0.0]]),
        "observation.language.tokens": torch.randint(4, 1000, (1, LANG_LEN), generator=g),
        "observation.language.attention_mask": torch.arange(LANG_LEN)[None] < 8,
    }


def test_gate_follows_end_effector_motion_through_select_action():
    """Chunks of 4 actions; the state's x moves by 1, 2, 3, ... per window (monotone increase)."""
    policy = make_pruned("adp", num_cameras=1, eef_slice=[0, 2])
    x, pruned = 0.0, []
    for window in range(8):
        for step in range(4):
            policy.select_action(_batch(window * 4 + step, x))
            if step == 0:
                pruned.append(policy.model.last_selection is not None)
            x += (window + 1) / 4
    assert pruned == [False, False, False, True, True, True, False, True]  # cold start 3, limit 3
    assert policy.model.pruner.gates[0].history[:3] == pytest.approx([1.0, 2.0, 3.0])
    policy.reset()
    assert policy.model.pruner.gates == []


def test_gate_without_end_effector_position_is_refused_before_any_work():
    with pytest.raises(ValueError, match="eef_slice"):
        make_pruned("adp", num_cameras=1)  # the tiny state has 2 values; the default slice is [0, 3)
    with pytest.raises(ValueError, match="action_fk needs delta-EEF actions"):
        make_pruned("adp", num_cameras=1, motion_source="action_fk")
