"""The pruned path under torch.compile (issue 5): fixed budgets compile once, with no recompiles across calls
or episodes, the compiled actions equal the eager ones, and selection reads nothing back to the host.

Dynamo runs with backend="eager" (tracing, guards and graph breaks as with inductor, at a fraction of the
cost), so the tests run on CPU.
"""

import pytest
import torch
import torch._dynamo
from conftest import make_active, model_inputs
from torch._dynamo.utils import counters
from torch.utils._python_dispatch import TorchDispatchMode

PI0_STRATEGIES = ["none", "compact", "random", "fastv", "vla_pruner", "ties", "adp", "divprune", "sparsevlm"]
OTHER_FAMILIES = [(family, strategy) for family in ("pi05", "smolvla") for strategy in ("fastv", "random")]
CALLS = 3  # per episode; covers the warm-ups (vla_pruner window 1, TIES's anchor frame, the random counter)
# Ops that read a device value on the host (a synchronisation on CUDA) or have data-dependent shapes.
SYNCING_OPS = {"_local_scalar_dense", "item", "nonzero", "is_nonzero", "equal", "masked_select", "unique_dim",
               "_unique2", "lift_fresh"}  # fmt: skip


def _episode(sample, inputs: dict) -> list[torch.Tensor]:
    return [sample(**inputs) for _ in range(CALLS)]


def _compiled_frames() -> tuple[int, int]:
    return counters["frames"]["total"], counters["stats"]["unique_graphs"]


def _assert_compiles_once(family: str, strategy: str):
    overrides = {"compact": True} if strategy == "compact" else {}
    policy = make_active(
        "none" if strategy == "compact" else strategy, num_cameras=2, family=family, **overrides
    )
    inputs = model_inputs(1, 2, prompt_lengths=[9], family=family)
    eager = _episode(policy.model.sample_actions, inputs)
    policy.reset()
    torch._dynamo.reset()
    counters.clear()
    compiled = torch.compile(policy.model.sample_actions, backend="eager")
    first = _episode(compiled, inputs)
    after_warm_up = _compiled_frames()
    policy.reset()
    with torch._dynamo.config.patch(error_on_recompile=True):
        second = _episode(compiled, inputs)
    assert _compiled_frames() == after_warm_up, f"{strategy}: a new episode compiled new frames"
    assert not counters["recompiles"]
    for episode in (first, second):
        for got, want in zip(episode, eager, strict=True):
            assert torch.equal(got, want), f"{strategy}: compiled actions differ from eager ones"
    if strategy not in ("none", "compact"):
        trace = policy.model.last_trace
        assert trace.kept_per_camera.sum() < trace.valid_per_camera.sum(), f"{strategy} did not prune"


@pytest.mark.parametrize("strategy", PI0_STRATEGIES)
def test_pi0_compiles_once_across_calls_and_episodes(strategy):
    _assert_compiles_once("pi0", strategy)


@pytest.mark.parametrize("family,strategy", OTHER_FAMILIES)
def test_pi05_and_smolvla_compile_once_across_calls_and_episodes(family, strategy):
    _assert_compiles_once(family, strategy)


class OpRecorder(TorchDispatchMode):
    """Records the name of every aten op dispatched while active."""

    def __init__(self):
        super().__init__()
        self.ops: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.add(func._schema.name.split("::")[-1])
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("strategy", ["fastv", "random", "vla_pruner", "ties", "adp"])
def test_selection_makes_no_host_sync(strategy):
    policy = make_active(strategy, num_cameras=2)
    inputs = model_inputs(2, 2, missing=[(), (1,)], prompt_lengths=[9, 5])
    _episode(policy.model.sample_actions, inputs)
    view, pruner = policy.model.last_view, policy.model.pruner
    with OpRecorder() as recorder:
        selection = pruner.select(view)
    assert selection is not None, f"{strategy} did not select on its last call"
    assert "sort" in recorder.ops, "the recorder saw the selection's ops"
    assert not recorder.ops & SYNCING_OPS, (
        f"{strategy}.select synchronises: {sorted(recorder.ops & SYNCING_OPS)}"
    )
    budget = view.budget(policy.config.pruning.keep_ratio)
    if strategy != "adp":  # ADP's per-camera quotas round per camera
        assert torch.equal(selection.counts, budget)
    assert selection.keep_idx.shape[1] == max(1, round(policy.config.pruning.keep_ratio * view.num_visual))


def test_random_draws_a_fresh_subset_per_call_and_repeats_after_reset():
    policy = make_active("random", num_cameras=2)
    inputs = model_inputs(1, 2)
    episodes = []
    for _ in range(2):
        policy.reset()
        picks = []
        for _ in range(CALLS):
            policy.model.sample_actions(**inputs)
            picks.append(policy.model.last_selection.keep_idx)
        episodes.append(picks)
    assert all(torch.equal(a, b) for a, b in zip(*episodes, strict=True))
    assert not torch.equal(episodes[0][0], episodes[0][1]), "two calls drew the same subset"
