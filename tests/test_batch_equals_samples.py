"""A batch gives each sample the actions it gets alone, for every registered strategy (§1.3)."""

import pytest
import torch
from conftest import make_pruned, model_inputs, select_rows

from lerobot_prune import list_strategies

STRATEGY_KWARGS = {"random": {"keep_ratio": 0.3}, "fastv": {"keep_ratio": 0.25}}


@pytest.mark.parametrize("strategy", list(list_strategies()))
def test_batch_equals_each_sample_alone(strategy):
    policy = make_pruned(strategy, **STRATEGY_KWARGS.get(strategy, {}))
    inputs = model_inputs(3, 3, missing=[(), (1,), (0, 2)], prompt_lengths=[5, 17, 40])
    batched = policy.model.sample_actions(**inputs)
    batch_kept = policy.model.last_trace.kept_per_camera
    for row in range(3):
        policy.model.reset_pruning()
        alone = policy.model.sample_actions(**select_rows(inputs, [row]))
        torch.testing.assert_close(batched[row : row + 1], alone, atol=1e-5, rtol=1e-5)
        assert policy.model.last_trace.kept_per_camera.tolist() == batch_kept[row : row + 1].tolist()
