"""Method-specific rules of methods_spec §10 (items 1, 2, 5, 6, 8) on the tiny π0 and on scripted inputs."""

import pytest
import torch
from conftest import TIES_STATS, make_active, make_base, make_pruned, model_inputs

from lerobot_prune.strategies.base import PruningView
from lerobot_prune.strategies.ties_calibration import frame_tau, trust_weight
from lerobot_prune.strategies.vla_pruner import temporal_weights


def _with_base_weights(policy):
    base = make_base()
    policy.load_state_dict(base.state_dict(), strict=True)
    return base, policy


# §10.1 no-op equivalence -----------------------------------------------------------------------------

NOOP = [
    ("vla_pruner", {}),  # warm-up call
    ("adp", {"gate": True, "eef_slice": [0, 2]}),  # gate closed during the cold start
    ("dtp", {"layers": [1, 2], "tau": 1e9}),  # probe finds nothing distracting
    ("dtp", {"layers": [1, 2], "tau": float("inf")}),
    ("ties", {}),  # anchor call runs unpruned
]


@pytest.mark.parametrize("strategy,kwargs", NOOP)
def test_calls_that_keep_everything_are_bit_identical_to_pi0(strategy, kwargs):
    base, policy = _with_base_weights(make_active(strategy, **kwargs))
    inputs = model_inputs(2, 3, missing=[(), (1,)], prompt_lengths=[7, 20])
    assert torch.equal(policy.model.sample_actions(**inputs), base.model.sample_actions(**inputs))
    assert policy.model.last_selection is None


@pytest.mark.parametrize("strategy", ["fastv", "sparsevlm", "divprune", "vla_pruner", "ties_topk", "adp"])
def test_keep_ratio_one_is_bit_identical_to_pi0(strategy):
    base, policy = _with_base_weights(make_active(strategy, keep_ratio=1.0))
    inputs = model_inputs(1, 3, prompt_lengths=[11])
    assert torch.equal(policy.model.sample_actions(**inputs), base.model.sample_actions(**inputs))


# §10.2 drop == mask ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "strategy", ["sparsevlm", "vla_pruner", "vla_pruner_fusion", "ties", "ties_uniform", "dtp"]
)
def test_drop_equals_mask_for_every_in_llm_strategy(strategy):
    inputs = model_inputs(1, 2, missing=[(1,)], prompt_lengths=[9])
    runs = []
    for mode in ("drop", "mask"):
        policy = make_active(strategy, num_cameras=2)
        policy.model.pruner.mode = mode
        policy.model.sample_actions(**inputs)
        runs.append((policy.model.sample_actions(**inputs), policy.model.last_selection.keep_idx))
    torch.testing.assert_close(runs[0][0], runs[1][0], atol=1e-4, rtol=0)
    assert torch.equal(runs[0][1], runs[1][1])


# §10.5 VLA-Pruner ----------------------------------------------------------------------------------------


def test_vla_pruner_warm_up_history_and_reset():
    policy = make_pruned("vla_pruner", window=3, keep_ratio=0.25)
    inputs = model_inputs(1, 3, prompt_lengths=[10])
    pruner = policy.model.pruner
    for call in range(5):
        policy.model.sample_actions(**inputs)
        pruned = policy.model.last_selection is not None
        assert pruned == (call >= 3), f"call {call + 1}: warm-up is the first w=3 calls"
        assert len(pruner.history) == min(call + 1, 3)
        assert pruner.history[-1].shape == (1, 3 * 256)
    policy.reset()
    assert len(pruner.history) == 0
    policy.model.sample_actions(**inputs)
    assert policy.model.last_selection is None


def test_temporal_weighting_orders_one_hot_histories():
    one_hot = [torch.eye(3)[i][None] for i in range(3)]  # a (oldest), b, c (newest)
    for weighting, expected in (("paper", [2, 1, 0]), ("code", [0, 1, 2])):
        weights = temporal_weights(3, 0.8, weighting)
        smoothed = sum(w * h for w, h in zip(weights, one_hot, strict=True))[0]
        assert torch.argsort(smoothed, descending=True).tolist() == expected
        assert abs(sum(weights) - 1) < 1e-9


def test_vla_pruner_union_size_and_no_filter_when_sets_agree():
    policy = make_active("vla_pruner", keep_ratio=0.25)
    inputs = model_inputs(2, 3, prompt_lengths=[6, 30])
    policy.model.sample_actions(**inputs)
    policy.model.sample_actions(**inputs)
    diagnostics = policy.model.last_trace.diagnostics
    budget = torch.tensor([192, 192])
    assert torch.all(diagnostics["union_size"] >= budget) and torch.all(
        diagnostics["union_size"] <= 2 * budget
    )

    pruner = policy.model.pruner
    view = policy.model.last_view
    scores = torch.rand(2, 768, generator=torch.Generator().manual_seed(0))
    budget = view.budget(0.25)
    same = pruner.dual_level(view, scores, scores, budget, 192)
    assert pruner.diagnostics()["diversity_filtered"].tolist() == [False, False]
    expected = torch.sort(
        torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :192], dim=1
    ).values
    assert torch.equal(same.keep_idx, expected)


# §10.6 TIES ----------------------------------------------------------------------------------------------


def test_soft_trust_is_monotone_with_half_at_the_median_and_hard_switches():
    stats = {"tau_p5": -0.2, "tau_median": 0.1, "tau_p95": 0.5}
    taus = torch.linspace(-0.5, 0.8, 60).tolist()
    soft = [trust_weight(t, stats, "soft") for t in taus]
    assert all(a >= b for a, b in zip(soft, soft[1:], strict=False))
    assert trust_weight(0.1, stats, "soft") == 0.5 and soft[0] == 1.0 and soft[-1] == 0.0
    assert [trust_weight(t, stats, "hard") for t in (0.09, 0.1, 0.11)] == [1.0, 1.0, 0.0]


def _ties_after_anchor(tau_median: float, trust: str = "hard"):
    policy = make_pruned("ties", num_cameras=2, trust=trust)
    policy.model.pruner.load_calibration({**TIES_STATS, "tau_median": tau_median})
    inputs = model_inputs(1, 2, prompt_lengths=[12])
    policy.model.sample_actions(**inputs)  # anchor
    policy.model.sample_actions(**inputs)
    return policy


def test_hard_ties_is_pure_top_k_below_and_pure_uniform_above_the_threshold():
    topk = make_active("ties_topk", num_cameras=2)
    uniform = make_active("ties_uniform", num_cameras=2)
    inputs = model_inputs(1, 2, prompt_lengths=[12])
    for policy in (topk, uniform):
        policy.load_state_dict(make_pruned("ties", num_cameras=2).state_dict())
        policy.model.sample_actions(**inputs)
    trusting = _ties_after_anchor(tau_median=1.0)  # τ <= τ_thr: trust the ranking
    distrusting = _ties_after_anchor(tau_median=-1.0)
    assert trusting.model.pruner.trust.tolist() == [1.0] and distrusting.model.pruner.trust.tolist() == [0.0]
    assert torch.equal(trusting.model.last_selection.keep_idx, topk.model.last_selection.keep_idx)
    assert torch.equal(distrusting.model.last_selection.keep_idx, uniform.model.last_selection.keep_idx)


def test_ties_re_anchors_exactly_when_similarity_drops_below_gamma():
    policy = make_active("ties", num_cameras=1)
    pruner = policy.model.pruner
    first = model_inputs(1, 1, prompt_lengths=[8], seed=1)
    policy.model.sample_actions(**first)
    assert policy.model.last_trace.diagnostics["reanchored"].tolist() == [True]
    for gamma_offset, expect in ((-1e-4, False), (1e-4, True)):
        second = model_inputs(1, 1, prompt_lengths=[8], seed=2)
        second["images"][0] = 0.9 * first["images"][0] + 0.1 * second["images"][0]
        anchor = pruner.anchor.clone()
        embeds = policy.model.embed_prefix(second["images"], second["img_masks"], second["lang_tokens"],
                                           second["lang_masks"])[0][:, :256].float()  # fmt: skip
        similarity = torch.nn.functional.cosine_similarity(embeds, anchor, dim=-1).mean().item()
        pruner.config.similarity_threshold = similarity + gamma_offset
        policy.model.sample_actions(**second)
        assert policy.model.last_trace.diagnostics["reanchored"].tolist() == [expect]
        pruner.anchor = anchor  # keep the first frame as anchor for the next case


def test_frame_tau_is_one_for_identical_rankings_and_uses_the_top_k():
    columns = torch.tensor([[5.0, 4, 3, 2, 1, 0], [5, 4, 3, 2, 1, 0], [5, 4, 3, 0, 1, 2]])
    valid = torch.ones(6, dtype=torch.bool)
    assert frame_tau(columns[:2], valid, 3) == pytest.approx(1.0)
    assert frame_tau(columns[1:], valid, 3) == pytest.approx(1.0)  # only the top-3 are compared
    assert frame_tau(columns[1:], valid, 6) < 1.0


def test_ties_refuses_to_run_without_calibration():
    policy = make_pruned("ties")
    with pytest.raises(RuntimeError, match="lerobot-prune calibrate"):
        policy.model.sample_actions(**model_inputs(1, 3))


def test_ties_rejects_statistics_of_another_setting():
    policy = make_pruned("ties", keep_ratio=0.5)
    with pytest.raises(ValueError, match="keep_ratio"):
        policy.model.pruner.load_calibration(TIES_STATS)


# §10.8 DTP ---------------------------------------------------------------------------------------------


def test_dtp_region_distracting_set_and_threshold():
    policy = make_active("dtp", num_cameras=2)
    inputs = model_inputs(1, 2, missing=[(1,)], prompt_lengths=[10])
    policy.model.sample_actions(**inputs)
    view, pruner = policy.model.last_view, policy.model.pruner
    region = pruner.important_region(view)
    assert region.sum(-1).tolist() == [[38, 38]]  # k = round(0.15 * 256) per camera
    pattern = pruner.action_pattern(view).reshape(1, 2, 256)
    kept = policy.model.last_selection.keep_mask(512).reshape(1, 2, 256)
    distracting = view.visual_valid.reshape(1, 2, 256) & ~kept
    assert not (distracting & region).any()
    assert not distracting[:, 1].any()  # the missing camera has nothing to prune
    strongest = pattern[0, 0][region[0, 0]].max()
    assert torch.equal(distracting[0, 0], ~region[0, 0] & (pattern[0, 0] > 0.3 * strongest))
    # D is empty exactly when tau * a_m >= max over U
    unimportant_max = pattern[0, 0][~region[0, 0]].max()
    pruner.config.tau = float(unimportant_max / strongest) * (1 + 1e-4)
    policy.model.sample_actions(**inputs)
    assert policy.model.last_selection is None and policy.model.last_trace.extra_prefix_passes == 0


def test_dtp_counts_its_second_pass():
    policy = make_active("dtp", num_cameras=1)
    policy.model.sample_actions(**model_inputs(1, 1))
    trace = policy.model.last_trace
    assert trace.extra_prefix_passes == 1 and trace.extra_steps == 1
    assert trace.diagnostics["distracting"].item() > 0


def test_views_expose_the_full_visual_index_after_compaction():
    policy = make_active("vla_pruner", compact=True)
    inputs = model_inputs(1, 3, missing=[(1,)])
    policy.model.sample_actions(**inputs)
    view: PruningView = policy.model.last_view
    assert view.visual_index.tolist() == list(range(256)) + list(range(512, 768))
    assert policy.model.pruner.history[-1][:, 256:512].abs().sum() == 0
