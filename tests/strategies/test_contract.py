"""The contract every registered strategy keeps (methods_spec §1.3, §10.3), on every tiny backbone."""

import pytest
import torch
from conftest import FAMILIES, LANG_LEN, fixed_prefix_tokens, make_active, model_inputs, select_rows

from lerobot_prune import list_strategies
from lerobot_prune.selection import keep_budget

STRATEGIES = [s for s in list_strategies() if s not in ("none", "compact")]
MISSING = [(), (1,), (0, 2)]
PROMPTS = [5, 17, 40]


def _two_calls(policy, inputs):
    """Second call's actions and selection (temporal strategies prune from the second call on)."""
    policy.model.sample_actions(**inputs)
    actions = policy.model.sample_actions(**inputs)
    return actions, policy.model.last_selection


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("family", FAMILIES)
def test_selection_is_valid_sorted_unique_and_on_budget(strategy, family):
    policy = make_active(strategy, family=family)
    inputs = model_inputs(3, 3, missing=MISSING, prompt_lengths=PROMPTS, family=family)
    _, selection = _two_calls(policy, inputs)
    assert selection is not None, f"{strategy} kept everything under its active settings"
    view = policy.model.last_view
    counts = selection.counts
    for row in range(3):
        idx = selection.keep_idx[row, : counts[row]]
        assert torch.all(idx[1:] > idx[:-1]), "indices must be unique and ascending"
        assert view.visual_valid[row, idx].all(), "a padded camera's token was kept"
    num_valid = view.visual_valid.sum(1)
    if strategy == "dtp":
        removed = num_valid - counts
        assert torch.equal(removed, torch.as_tensor(policy.model.last_trace.diagnostics["distracting"]))
    else:  # ADP's quotas split the same total over cameras (tested in test_adp.py)
        ratio = policy.config.pruning.keep_ratio
        assert torch.equal(counts, keep_budget(view.visual_valid, ratio)), "budget is max(1, round(ρ M_v))"
    trace = policy.model.last_trace
    assert trace.kept_per_camera.sum(1).tolist() == counts.tolist()


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("family", FAMILIES)
def test_language_tokens_are_never_removed(strategy, family):
    policy = make_active(strategy, family=family, num_cameras=2)
    inputs = model_inputs(1, 2, prompt_lengths=[9], family=family)
    _, selection = _two_calls(policy, inputs)
    lengths = policy.model.last_trace.prefix_lengths
    others = LANG_LEN + fixed_prefix_tokens(policy.model, 2)
    if policy.model.pruner.mode == "mask":
        assert lengths == [2 * policy.model.tokens_per_camera + others] * policy.model.vlm_depth
    else:
        assert lengths[-1] == int(selection.counts.max()) + others


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("family", FAMILIES)
def test_deterministic_under_a_seed_and_reset_clears_state(strategy, family):
    inputs = model_inputs(2, 3, missing=MISSING[:2], prompt_lengths=PROMPTS[:2], family=family)
    policy = make_active(strategy, family=family)
    first_episode = [policy.model.sample_actions(**inputs) for _ in range(3)]
    policy.reset()
    second_episode = [policy.model.sample_actions(**inputs) for _ in range(3)]
    fresh = make_active(strategy, family=family)
    fresh_episode = [fresh.model.sample_actions(**inputs) for _ in range(3)]
    for a, b, c in zip(first_episode, second_episode, fresh_episode, strict=True):
        assert torch.equal(a, b) and torch.equal(a, c)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("family", FAMILIES)
def test_episodes_run_as_lerobot_runs_them_under_inference_mode(strategy, family):
    """LeRobot's rollout calls `select_action` under `torch.inference_mode()` and `reset()` outside it; state
    made in one mode and updated in the other must not break the second episode, nor change its actions."""
    inputs = model_inputs(2, 3, missing=MISSING[:2], prompt_lengths=PROMPTS[:2], family=family)
    policy = make_active(strategy, family=family)
    episodes = []
    for _ in range(2):
        policy.reset()
        with torch.inference_mode():
            episodes.append([policy.model.sample_actions(**inputs) for _ in range(3)])
    policy.reset()
    with torch.no_grad():
        episodes.append([policy.model.sample_actions(**inputs) for _ in range(3)])
    for a, b, c in zip(*episodes, strict=True):
        assert torch.equal(a, b) and torch.equal(a, c)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("family", FAMILIES)
def test_batch_equals_each_sample_alone(strategy, family):
    policy = make_active(strategy, family=family)
    inputs = model_inputs(3, 3, missing=MISSING, prompt_lengths=PROMPTS, family=family)
    batched, _ = _two_calls(policy, inputs)
    batch_kept = policy.model.last_trace.kept_per_camera
    for row in range(3):
        policy.reset()
        alone, _ = _two_calls(policy, select_rows(inputs, [row]))
        torch.testing.assert_close(batched[row : row + 1], alone, atol=1e-5, rtol=1e-5)
        assert policy.model.last_trace.kept_per_camera.tolist() == batch_kept[row : row + 1].tolist()
