"""No-op strategies must leave LeRobot's π0 / π0.5 / SmolVLA untouched (methods_spec §10.1)."""

import pytest
import torch
from conftest import (
    FAMILIES,
    IMAGE_SIZE,
    fixed_prefix_tokens,
    make_base,
    make_pruned,
    model_inputs,
    vocab_size,
)


def _same_weights(pruned, base):
    pruned.load_state_dict(base.state_dict(), strict=True)
    return pruned


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize(
    "strategy,kwargs", [("none", {}), ("fastv", {"keep_ratio": 1.0}), ("random", {"keep_ratio": 1.0})]
)
def test_noop_strategies_are_bit_identical_to_upstream(strategy, kwargs, family):
    base = make_base(family=family)
    pruned = _same_weights(make_pruned(strategy, family=family, **kwargs), base)
    inputs = model_inputs(2, 3, missing=[(), (1,)], prompt_lengths=[7, 20], family=family)
    expected = base.model.sample_actions(**inputs)
    assert torch.equal(pruned.model.sample_actions(**inputs), expected)


@pytest.mark.parametrize("family", FAMILIES)
def test_compact_matches_upstream_with_missing_camera_and_short_prompt(family):
    base = make_base(family=family)
    pruned = _same_weights(make_pruned("compact", family=family), base)
    inputs = model_inputs(1, 3, missing=[(2,)], prompt_lengths=[5], family=family)
    expected = base.model.sample_actions(**inputs)
    actions = pruned.model.sample_actions(**inputs)
    torch.testing.assert_close(actions, expected, atol=1e-5, rtol=1e-5)
    trace = pruned.model.last_trace
    per_camera = pruned.model.tokens_per_camera
    # missing camera and 43 padding tokens gone
    assert trace.prefix_lengths[0] == 2 * per_camera + 5 + fixed_prefix_tokens(pruned.model, 3)
    assert trace.kept_per_camera.tolist() == [[per_camera, per_camera, 0]]


@pytest.mark.parametrize("family", FAMILIES)
def test_policy_level_none_matches_upstream_predict_action_chunk(family):
    base = make_base(family=family)
    pruned = _same_weights(make_pruned("none", family=family), base)
    g = torch.Generator().manual_seed(3)
    size = IMAGE_SIZE.get(family, 224)
    batch = {f"observation.images.cam{i}": torch.rand(1, 3, size, size, generator=g) for i in range(2)}
    batch |= {"observation.state": torch.randn(1, 2, generator=g),
              "observation.language.tokens": torch.randint(4, vocab_size(family), (1, 48), generator=g),
              "observation.language.attention_mask": torch.ones(1, 48, dtype=torch.bool)}  # fmt: skip
    torch.manual_seed(5)
    expected = base.predict_action_chunk(batch)
    torch.manual_seed(5)
    assert torch.equal(pruned.predict_action_chunk(batch), expected)
    per_camera = pruned.model.tokens_per_camera
    # SmolVLA leaves a camera missing from the batch out of the prefix (no `empty_cameras` here).
    expected = [[per_camera, per_camera]] if family == "smolvla" else [[per_camera, per_camera, 0]]
    assert pruned.report.calls[-1]["kept_visual_per_camera"] == expected
