"""A bad observation gets one clear error before any model work; NaN/inf actions never leave the policy."""

import pytest
import torch
from conftest import FAMILIES, IMAGE_SIZE, make_pruned, vocab_size

from lerobot_prune.batch_checks import BadObservationError, NonFiniteActionError

CAM = "observation.images.cam0"


def good_batch(family: str = "pi0", batch: int = 2) -> dict:
    g = torch.Generator().manual_seed(0)
    size = IMAGE_SIZE.get(family, 224)
    return {CAM: torch.rand(batch, 3, size, size, generator=g), "observation.state": torch.randn(batch, 2),
            "observation.language.tokens": torch.randint(4, vocab_size(family), (batch, 48), generator=g),
            "observation.language.attention_mask": torch.ones(batch, 48, dtype=torch.bool)}  # fmt: skip


def _with(key, make):
    return lambda b: b | {key: make(b[key])}


def _nan_at_corner(x):
    x = x.clone()
    x[0, 0, 0, 0] = float("nan")
    return x


# name -> (change to a good batch, pattern the one-line message must match)
BAD = {
    "channels_last": (_with(CAM, lambda x: x.permute(0, 2, 3, 1)),
                      r"cam0 has shape \(2, \d+, \d+, 3\) with \d+ channels; .*\[batch, 3, H, W\] \(channels-last"),
    "one_channel": (_with(CAM, lambda x: x[:, :1]), r"cam0 has shape \(2, 1, \d+, \d+\) with 1 channels"),
    "no_batch_dim": (_with(CAM, lambda x: x[0]), r"cam0 has shape \(3, \d+, \d+\); images need \[batch, 3, H, W\]"),
    "uint8_image": (_with(CAM, lambda x: (x * 255).to(torch.uint8)), r"cam0 is a torch.uint8 tensor; .*/ 255"),
    "pixels_0_255": (_with(CAM, lambda x: x * 255), r"cam0 has values in \[.*\]; images must be floats in \[0, 1\] "
                                                    r"\(0-255 pixel values: divide by 255\)"),
    "minus_one_to_one": (_with(CAM, lambda x: x * 2 - 1), r"cam0 has values in \[-.*\]; images must be floats"),
    "nan_image": (_with(CAM, _nan_at_corner), r"cam0 contains NaN or inf values"),
    "inf_state": (_with("observation.state", lambda x: x.clone().fill_(float("inf"))),
                  r"observation.state contains NaN or inf values"),
    "state_too_long": (_with("observation.state", lambda x: torch.zeros(2, 6)),
                       r"observation.state has shape \(2, 6\); this policy needs \[batch, 2\]"),
    "state_no_batch": (_with("observation.state", lambda x: x[0]), r"observation.state has shape \(2,\); .*\[batch, 2\]"),
    "batch_sizes_differ": (_with(CAM, lambda x: x[:1]), r"Batch sizes differ between observation keys: \{.*cam0': 1"),
    "tokens_batch_differs": (_with("observation.language.tokens", lambda x: x[:1]),
                             r"Batch sizes differ.*'observation.language.tokens': 1"),
    "empty_batch": (lambda b: {k: v[:0] for k, v in b.items()}, r"Empty batch: .* have batch size 0"),
}  # fmt: skip


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("case", BAD)
def test_bad_observation_is_refused_with_one_line_before_the_model_runs(case, family):
    policy = make_pruned("fastv", num_cameras=1, family=family, keep_ratio=0.5)
    change, pattern = BAD[case]
    calls = []
    policy.model.sample_actions = lambda *a, **k: calls.append(1)
    with pytest.raises(BadObservationError, match=pattern) as error:
        policy.predict_action_chunk(change(good_batch(family)))
    assert "\n" not in str(error.value) and not calls and not policy.report.calls


@pytest.mark.parametrize("family", FAMILIES)
def test_a_good_batch_passes_and_blind_images_stay_valid(family):
    for blind in (False, True):
        policy = make_pruned("fastv", num_cameras=1, family=family, keep_ratio=0.5, blind=blind)
        actions = policy.predict_action_chunk(good_batch(family))
        assert actions.shape[0] == 2 and torch.isfinite(actions).all()


def _poison_after(policy, calls_ok: int):
    """Makes the action expert's output NaN from the (calls_ok+1)-th pruned call on; full vision stays fine."""
    original = policy.model.pruned_sample_actions
    pruned_calls = []

    def sample(*args, **kwargs):
        actions = original(*args, **kwargs)
        if policy.model.pruner is not None:
            pruned_calls.append(1)
            if len(pruned_calls) > calls_ok:
                actions = actions.clone()
                actions[1] = float("nan")
        return actions

    policy.model.pruned_sample_actions = sample


def test_nonfinite_actions_raise_by_default_naming_the_rows():
    policy = make_pruned("fastv", num_cameras=1, keep_ratio=0.5)
    _poison_after(policy, 0)
    with pytest.raises(NonFiniteActionError, match=r"NaN/inf actions for batch rows \[1\] .*'fastv'.*"
                                                   r"pruning.fallback=full_vision retries"):  # fmt: skip
        policy.predict_action_chunk(good_batch())
    assert not policy.report.calls


def test_nonfinite_actions_with_fallback_rerun_the_call_with_full_vision():
    policy = make_pruned("fastv", num_cameras=1, keep_ratio=0.5, fallback="full_vision")
    _poison_after(policy, 1)
    first = policy.predict_action_chunk(good_batch())  # pruned, finite
    second = policy.predict_action_chunk(good_batch())  # pruned -> NaN -> full vision
    assert torch.isfinite(first).all() and torch.isfinite(second).all()
    assert policy.model.pruner is not None  # restored after the retry
    assert [c["fallback"] for c in policy.report.calls] == [False, True] and policy.model.fallback_count == 1


def test_nonfinite_actions_of_an_unpruned_policy_raise_even_with_fallback():
    policy = make_pruned("none", num_cameras=1, fallback="full_vision")
    policy.model.pruned_sample_actions = lambda *a, **k: torch.full((2, 4, 32), float("nan"))
    with pytest.raises(
        NonFiniteActionError, match=r"rows \[0, 1\] \(pruning.type='none'\).*check the weights\.$"
    ):
        policy.predict_action_chunk(good_batch())
