"""Physical removal equals masking the same tokens (methods_spec §1.4, §10.2)."""

import pytest
import torch
from conftest import FAMILIES, LANG_LEN, fixed_prefix_tokens, make_pruned, model_inputs

MISSING = {1: [()], 2: [(1,)], 3: [(0,)]}


def _drop_vs_mask(policy, inputs):
    policy.model.pruner.mode = "drop"
    dropped = policy.model.sample_actions(**inputs)
    drop_lengths = policy.model.last_trace.prefix_lengths
    policy.model.reset_pruning()
    policy.model.pruner.mode = "mask"
    masked = policy.model.sample_actions(**inputs)
    return dropped, masked, drop_lengths


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("layer", [1, 2, 3])
@pytest.mark.parametrize("keep_ratio", [0.5, 0.125])
@pytest.mark.parametrize("num_cameras", [1, 2, 3])
def test_in_llm_drop_equals_mask(layer, keep_ratio, num_cameras, family):
    policy = make_pruned("fastv", num_cameras=num_cameras, keep_ratio=keep_ratio, layer=layer, family=family)
    inputs = model_inputs(1, num_cameras, missing=MISSING[num_cameras], prompt_lengths=[9], family=family)
    dropped, masked, lengths = _drop_vs_mask(policy, inputs)
    torch.testing.assert_close(dropped, masked, atol=1e-4, rtol=0)
    per_camera, depth = policy.model.tokens_per_camera, policy.model.vlm_depth
    others = LANG_LEN + fixed_prefix_tokens(policy.model, num_cameras)
    valid = per_camera * (num_cameras - len(MISSING[num_cameras][0]))
    kept = max(1, round(keep_ratio * valid))
    assert policy.model.last_trace.kept_per_camera.sum() == kept
    # The kept width is static (ρ × every visual column, missing cameras' slots padded): shapes never vary.
    width = max(1, round(keep_ratio * per_camera * num_cameras))
    assert lengths[:layer] == [per_camera * num_cameras + others] * layer
    assert lengths[layer:] == [width + others] * (depth - layer)


@pytest.mark.parametrize("family", FAMILIES)
def test_pre_llm_drop_with_preserved_positions_equals_mask(family):
    policy = make_pruned("random", num_cameras=2, keep_ratio=0.25, preserve_positions=True, family=family)
    inputs = model_inputs(2, 2, missing=[(), (0,)], prompt_lengths=[4, 30], family=family)
    dropped, masked, lengths = _drop_vs_mask(policy, inputs)
    torch.testing.assert_close(dropped, masked, atol=1e-4, rtol=0)
    kept = round(0.25 * 2 * policy.model.tokens_per_camera)  # the fuller sample's budget
    others = LANG_LEN + fixed_prefix_tokens(policy.model, 2)
    assert lengths == [kept + others] * policy.model.vlm_depth


@pytest.mark.parametrize("family", FAMILIES)
def test_pruning_changes_actions(family):
    """Guards the tests above against a pruning path that silently keeps everything."""
    full = make_pruned("none", num_cameras=2, family=family)
    pruned = make_pruned("fastv", num_cameras=2, keep_ratio=0.125, family=family)
    pruned.load_state_dict(full.state_dict())
    inputs = model_inputs(1, 2, family=family)
    assert not torch.allclose(
        full.model.sample_actions(**inputs), pruned.model.sample_actions(**inputs), atol=1e-4
    )
