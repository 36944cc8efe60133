"""Pruning-aware fine-tuning: the training forward of tiny pruned π0 / π0.5 policies against LeRobot's."""

import copy

import pytest
import torch
from conftest import CHUNK, LANG_LEN, TIES_STATS, make_base, make_pruned
from lerobot.policies.pi0.modeling_pi0 import PI0Pytorch
from lerobot.utils.constants import ACTION, OBS_LANGUAGE_ATTENTION_MASK, OBS_LANGUAGE_TOKENS, OBS_STATE

from lerobot_prune.families.paligemma.arch import TINY_ARCH
from lerobot_prune.families.paligemma.training import drop_visual, layer_key_masks
from lerobot_prune.strategies.adp import ADPConfig

CAMERAS = 2
PALIGEMMA = ["pi0", "pi05"]  # SmolVLA refuses pruning-aware training (test at the end)
VALID = CAMERAS * 256
# keep_ratio 0.25 of 512 valid visual tokens -> 128 kept per sample.
PRUNING = {
    "fastv": {"keep_ratio": 0.25},
    "sparsevlm": {"keep_ratio": 0.25},
    "random": {"keep_ratio": 0.25},
    "divprune": {"keep_ratio": 0.25},
    "adp": {"keep_ratio": 0.25, "eef_slice": [0, 2]},
    "vla_pruner": {"keep_ratio": 0.25},
    "ties": {"keep_ratio": 0.25},
    "ties_topk": {"keep_ratio": 0.25},
}


def training_batch(batch: int = 2, seed: int = 3) -> dict:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([9, 5, 12, 7][:batch])
    masks = torch.arange(LANG_LEN)[None, :] < lengths[:, None]
    out = {f"observation.images.cam{i}": torch.rand(batch, 3, 224, 224, generator=g) for i in range(CAMERAS)}
    out |= {
        OBS_STATE: torch.randn(batch, 2, generator=g),
        ACTION: torch.randn(batch, CHUNK, 2, generator=g),
        OBS_LANGUAGE_TOKENS: torch.randint(4, TINY_ARCH["vocab_size"], (batch, LANG_LEN), generator=g)
        * masks,
        OBS_LANGUAGE_ATTENTION_MASK: masks,
    }
    return out


def train_loss(policy, batch, seed: int = 11):
    torch.manual_seed(seed)  # same noise and time for every policy
    return policy.forward(batch)


def model_args(policy, batch, seed: int = 11) -> dict:
    """Arguments of `PI0Pytorch.forward` for `batch` (images preprocessed as `PI0Policy.forward` does)."""
    images, img_masks = policy._preprocess_images(batch)
    g = torch.Generator().manual_seed(seed)
    actions = policy.prepare_action(batch)
    return dict(images=images, img_masks=img_masks, lang_tokens=batch[OBS_LANGUAGE_TOKENS],
                lang_masks=batch[OBS_LANGUAGE_ATTENTION_MASK], state=policy.prepare_state(batch),
                actions=actions, noise=torch.randn(actions.shape, generator=g),
                time=torch.rand(actions.shape[0], generator=g))  # fmt: skip


@pytest.mark.parametrize(
    "strategy,kwargs",
    [("none", {}), ("fastv", {"keep_ratio": 1.0}), ("fastv", {"keep_ratio": 0.25, "in_training": False})],
)
@pytest.mark.parametrize("family", PALIGEMMA)
def test_unpruned_training_loss_is_bit_identical_to_upstream(strategy, kwargs, family):
    batch = training_batch()
    base = make_base(CAMERAS, family=family).train()
    pruned = make_pruned(strategy, CAMERAS, family=family, **kwargs).train()
    (base_loss, base_out), (loss, out) = train_loss(base, batch), train_loss(pruned, batch)
    assert torch.equal(loss, base_loss) and out["loss"] == base_out["loss"]
    assert out["pruning/kept_visual_tokens"] == VALID and out["pruning/keep_fraction"] == 1.0
    assert out["pruning/flop_ratio"] == 1.0


def test_own_layer_loop_without_selection_is_bit_identical_to_upstream_forward():
    policy = make_pruned("fastv", CAMERAS, keep_ratio=0.25).train()
    args = model_args(policy, training_batch())
    model = policy.model
    upstream = PI0Pytorch.forward(model, **args)
    prefix, offset, _ = model.embed_for_pruning(
        args["images"], args["img_masks"], args["lang_tokens"], args["lang_masks"], model.pruner
    )
    t = args["time"][:, None, None]
    x_t = t * args["noise"] + (1 - t) * args["actions"]
    velocity = model.flow_velocity(
        prefix, offset, [prefix.pad] * model.depth, args["state"], x_t, args["time"]
    )
    ours = torch.nn.functional.mse_loss(args["noise"] - args["actions"], velocity, reduction="none")
    assert torch.equal(ours, upstream)


@pytest.mark.parametrize("strategy", list(PRUNING))
@pytest.mark.parametrize("family", PALIGEMMA)
def test_pruned_training_changes_the_loss_and_gradients_flow(strategy, family):
    batch = training_batch()
    base_loss, _ = train_loss(make_base(CAMERAS, family=family).train(), batch)
    policy = make_pruned(strategy, CAMERAS, family=family, **PRUNING[strategy]).train()
    loss, out = train_loss(policy, batch)
    assert torch.isfinite(loss) and loss.item() != base_loss.item()
    assert out["pruning/kept_visual_tokens"] == 128 and out["pruning/keep_fraction"] == 0.25
    assert 0.0 < out["pruning/flop_ratio"] < 1.0
    assert all(isinstance(v, float) for k, v in out.items() if k.startswith("pruning/"))
    loss.backward()
    model = policy.model
    for name, param in [
        ("vision", model.paligemma_with_expert.paligemma.model.multi_modal_projector.linear.weight),
        ("vlm layer 0", model.language_model.layers[0].self_attn.q_proj.weight),
        ("vlm last layer", model.language_model.layers[-1].self_attn.k_proj.weight),
        ("expert last layer", model.expert_model.layers[-1].self_attn.q_proj.weight),
        ("action_out_proj", model.action_out_proj.weight),
    ]:
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name


def test_strategy_training_diagnostics_are_logged():
    batch = training_batch()
    _, out = train_loss(make_pruned("adp", CAMERAS, **PRUNING["adp"]).train(), batch)
    assert out["pruning/gate_state"] == 1.0
    _, out = train_loss(make_pruned("vla_pruner", CAMERAS, **PRUNING["vla_pruner"]).train(), batch)
    assert out["pruning/warm"] == 1.0


def test_gradient_checkpointing_gives_the_same_pruned_loss():
    batch = training_batch()
    plain = make_pruned("fastv", CAMERAS, keep_ratio=0.25).train()
    ckpt = make_pruned("fastv", CAMERAS, keep_ratio=0.25).train()
    ckpt.model.gradient_checkpointing_enable()
    (loss, _), (ckpt_loss, _) = train_loss(plain, batch), train_loss(ckpt, batch)
    assert torch.equal(loss, ckpt_loss)
    ckpt_loss.backward()
    assert ckpt.model.language_model.layers[0].self_attn.q_proj.weight.grad is not None


def test_masking_from_layer_0_equals_dropping_before_the_vlm():
    """An in-LLM selection masked in every layer == the kept columns physically gathered (positions kept)."""
    policy = make_pruned("fastv", CAMERAS, keep_ratio=0.25).eval()
    model = policy.model
    args = model_args(policy, training_batch())
    prefix, offset, _ = model.embed_for_pruning(
        args["images"], args["img_masks"], args["lang_tokens"], args["lang_masks"], model.pruner
    )
    with torch.no_grad():
        view = model.make_view(prefix, torch.arange(prefix.num_visual), CAMERAS, model.pruner)
        _, selection, _ = model.prefill(prefix, offset, view, model.pruner, training=True)
        x_t, time = args["noise"], args["time"]
        masked = model.flow_velocity(
            prefix, offset, layer_key_masks(prefix, selection, 0, model.depth), args["state"], x_t, time
        )
        kept, kept_offset = drop_visual(prefix, selection, preserve_positions=True)
        dropped = model.flow_velocity(kept, kept_offset, [kept.pad] * model.depth, args["state"], x_t, time)
    torch.testing.assert_close(masked, dropped, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("strategy", ["fastv", "vla_pruner_prefill_only"])
def test_masked_training_velocity_equals_pruned_inference_at_layer_k(strategy):
    """The masked joint pass gives the inference engine's velocity (KV cache of kept tokens from K on)."""
    policy = make_pruned(strategy, CAMERAS, keep_ratio=0.25, layer=2).eval()
    model = policy.model
    args = model_args(policy, training_batch())
    with torch.no_grad():
        prefix, offset, index = model.embed_for_pruning(
            args["images"], args["img_masks"], args["lang_tokens"], args["lang_masks"], model.pruner
        )
        train_prefix, train_offset, key_masks = model.apply_training_selection(
            prefix, offset, index, CAMERAS, LANG_LEN
        )
        trained = model.flow_velocity(train_prefix, train_offset, key_masks, args["state"], args["noise"],
                                      args["time"])  # fmt: skip
        view = model.make_view(prefix, index, CAMERAS, model.pruner)
        kv, selection, _ = model.prefill(prefix, offset, view, model.pruner)
        assert selection is not None and kv.layer_lengths[2] < kv.layer_lengths[1]
        kv.reading = True
        inferred = model.denoise_with_prefix(args["state"], kv, args["noise"], args["time"])
    assert model.training_metrics["pruning/kept_visual_tokens"] == 128
    torch.testing.assert_close(trained, inferred, rtol=1e-4, atol=1e-5)


def _snapshot(obj):
    return copy.deepcopy({k: v for k, v in vars(obj).items() if k != "config"})


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) or type(a).__name__ == "deque":
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if hasattr(a, "__dict__") and not isinstance(a, type):
        return type(a) is type(b) and _same(vars(a), vars(b))
    return a == b


@pytest.mark.parametrize(
    "strategy,kwargs",
    [("vla_pruner", {"window": 1}), ("ties", {}), ("adp", {"eef_slice": [0, 2]}), ("random", {})],
)
def test_training_step_leaves_inference_state_untouched(strategy, kwargs):
    from conftest import model_inputs

    policies = [make_pruned(strategy, CAMERAS, keep_ratio=0.25, **kwargs) for _ in range(2)]
    inputs = model_inputs(2, CAMERAS)
    for policy in policies:
        if strategy == "ties":
            policy.model.pruner.load_calibration({**TIES_STATS, "keep_ratio": 0.25})
        policy.model.pruner.observe_state(inputs["state"][:, :2], new_chunk=True)
        policy.model.sample_actions(**inputs)
    trained, reference = policies
    before = _snapshot(trained.model.pruner)
    model_before = (trained.model.call_index, trained.model.last_trace, trained.model.last_selection)
    trained.train()
    loss, _ = train_loss(trained, training_batch())
    loss.backward()
    trained.eval()
    assert _same(_snapshot(trained.model.pruner), before)
    assert (trained.model.call_index, trained.model.last_trace, trained.model.last_selection) == model_before
    for policy in policies:
        policy.model.pruner.observe_state(inputs["state"][:, :2], new_chunk=True)
    # Gradients do not change weights (no optimizer step): the next inference call is unchanged.
    assert torch.equal(trained.model.sample_actions(**inputs), reference.model.sample_actions(**inputs))


def test_dtp_refuses_to_train_before_any_work():
    policy = make_pruned("dtp", CAMERAS, layers=[1, 2]).train()
    batch = training_batch()
    del batch[OBS_STATE]  # any work on the batch would fail with a KeyError first
    with pytest.raises(ValueError, match=r"denoising probe.*--policy.pruning.in_training=false"):
        policy.forward(batch)
    policy = make_pruned("dtp", CAMERAS, layers=[1, 2], in_training=False).train()
    loss, out = policy.forward(training_batch())
    assert torch.isfinite(loss) and out["pruning/keep_fraction"] == 1.0


def test_dtp_refuses_a_training_build_at_construction(tmp_path):
    """lerobot-train builds the policy with the dataset's metadata: DTP says it cannot train right then."""
    from lerobot.datasets.dataset_metadata import LeRobotDatasetMetadata

    from lerobot_prune import make_pruning_config

    features = {"observation.state": {"dtype": "float32", "shape": [2], "names": None}}
    meta = LeRobotDatasetMetadata.create("local/dtp_meta", fps=10, features=features, root=tmp_path / "ds")
    config = make_pruned("dtp", CAMERAS, layers=[1, 2]).config
    with pytest.raises(ValueError, match=r"denoising probe.*--policy.pruning.in_training=false"):
        type(make_pruned("none", CAMERAS))(config, dataset_meta=meta)
    config.pruning = make_pruning_config("dtp", layers=[1, 2], in_training=False)
    type(make_pruned("none", CAMERAS))(config, dataset_meta=meta)  # builds


@pytest.mark.parametrize(
    "features,message",
    [
        (
            {"observation.state": {"dtype": "float32", "shape": [6]}},
            "dataset's observation.state has 6 values",
        ),
        ({}, r"dataset \(no observation.state\) has 0 values"),
    ],
)
def test_adp_checks_the_training_dataset_state(features, message):
    with pytest.raises(ValueError, match=r"observation.state\[4:8\].*" + message):
        ADPConfig(eef_slice=[4, 8]).validate_for_dataset(features)
    ADPConfig(eef_slice=[4, 8], gate=False).validate_for_dataset(features)


def test_smolvla_refuses_pruning_aware_training_and_trains_unpruned_when_asked():
    with pytest.raises(ValueError, match=r"pruned_smolvla does not apply 'fastv'.*in_training=false"):
        make_pruned("fastv", CAMERAS, family="smolvla", keep_ratio=0.25).train().forward(training_batch())
    policy = make_pruned("fastv", CAMERAS, family="smolvla", keep_ratio=0.25, in_training=False).train()
    policy.model.check_training()  # SmolVLA's own loss runs
    assert policy.model.training_metrics == {}
