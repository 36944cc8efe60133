"""Selection inside the vision encoder (`pruning.encoder`, issue 15): config checks, identity, carry-over
refresh schedule, batch independence, FLOP accounting."""

import functools

import pytest
import torch
from conftest import FAMILIES, config_kwargs, make_base, make_pruned, model_inputs, select_rows

from lerobot_prune import make_pruning_config
from lerobot_prune.families.paligemma.arch import TINY_ARCH

MISSING = [(), (1,), (0, 2)]
PROMPTS = [5, 17, 40]


def make_deep(strategy: str = "fastv", family: str = "pi0", **pruning):
    """A tiny π0 / π0.5 whose SigLIP tower has 2 layers (in_encoder needs one on each side of its cut);
    same seed -> the same weights as `make_deep_base`."""
    config_cls, policy_cls = FAMILIES[family][:2]
    config = config_cls(pruning=make_pruning_config(strategy, **pruning),
                        arch_override=dict(TINY_ARCH, vision_depth=2), **config_kwargs(3, family))  # fmt: skip
    torch.manual_seed(0)
    return policy_cls(config).eval()


def make_deep_base(family: str = "pi0"):
    base = make_deep("fastv", family=family, keep_ratio=1.0)
    return base


def calls(policy, inputs: dict, n: int) -> list[torch.Tensor]:
    return [policy.model.sample_actions(**inputs) for _ in range(n)]


def tower_patches(policy) -> list[list[int]]:
    """`[B][C]` patches that entered the last tower layer on the last call."""
    return policy.model.last_trace.encoder_patches[:, -1].tolist()


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"encoder": "before"}, "pruning.encoder='before' is not valid"),
        ({"encoder_refresh": 0}, "pruning.encoder_refresh=0 must be an integer >= 1"),
        ({"encoder_keep_ratio": 0.0}, "pruning.encoder_keep_ratio=0.0 is outside (0.0, 1.0]"),
        ({"encoder_keep_ratio": 1.5}, "pruning.encoder_keep_ratio=1.5 is outside (0.0, 1.0]"),
        ({"vision_dtype": "float16"}, "pruning.vision_dtype='float16' is not valid"),
    ],
)
def test_bad_encoder_fields_are_refused_with_their_name(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        make_pruning_config("fastv", **kwargs)


@pytest.mark.parametrize("strategy", ["none", "compact"])
def test_encoder_on_a_strategy_that_keeps_everything_is_refused(strategy):
    with pytest.raises(ValueError, match="pruning.encoder='carry_over' needs a strategy that keeps a subset"):
        make_pruning_config(strategy, encoder="carry_over")


def test_encoder_layer_is_checked_against_the_tower_depth():
    # The tiny π0 tower has 1 layer: no layer is left to run on the kept patches.
    with pytest.raises(
        ValueError, match=r"pruning.encoder_layer=1 is outside \[1, 0\] .*1 vision tower layers"
    ):
        make_pruned("fastv", encoder="in_encoder", keep_ratio=0.5)


def test_encoder_off_is_bit_identical_to_upstream_whatever_the_other_encoder_fields():
    base = make_base()
    pruned = make_pruned("fastv", keep_ratio=1.0, encoder="off", encoder_refresh=2, encoder_keep_ratio=0.25)
    pruned.load_state_dict(base.state_dict(), strict=True)
    inputs = model_inputs(2, 3, missing=[(), (1,)], prompt_lengths=[7, 20])
    assert torch.equal(pruned.model.sample_actions(**inputs), base.model.sample_actions(**inputs))
    assert pruned.model.last_trace.encoder_patches is None


@pytest.mark.parametrize("family", ["pi0", "pi05"])
@pytest.mark.parametrize(
    "kwargs",
    [
        {"encoder": "in_encoder", "encoder_keep_ratio": 1.0},
        {"encoder": "carry_over", "encoder_refresh": 3},
        {"pack_cameras": True},
    ],
)
def test_keeping_every_patch_matches_upstream(kwargs, family):
    base = make_deep_base(family)
    pruned = make_deep("fastv", family=family, keep_ratio=1.0, **kwargs)
    inputs = model_inputs(3, 3, missing=MISSING, prompt_lengths=PROMPTS, family=family)
    expected = base.model.sample_actions(**inputs)  # keep 1.0 without encoder fields: LeRobot's own path
    for actions in calls(pruned, inputs, 3):  # carry_over: one refresh call, then two carried calls
        torch.testing.assert_close(actions, expected, atol=1e-5, rtol=1e-5)


def test_carry_over_encodes_only_the_carried_patches_between_refreshes():
    policy = make_deep("fastv", keep_ratio=0.25, encoder="carry_over", encoder_refresh=3)
    inputs = model_inputs(2, 3, missing=[(), (1,)], prompt_lengths=[7, 20])
    full = [[256, 256, 256], [256, 256, 256]]
    seen, first_layer = [], []
    for _ in range(2):  # two episodes: reset() forces a refresh
        policy.reset()
        for _ in range(4):
            policy.model.sample_actions(**inputs)
            seen.append(tower_patches(policy))
            first_layer.append(policy.model.last_trace.prefix_lengths[0])
    kept = policy.model.last_trace.kept_per_camera.tolist()
    assert seen == [full, kept, kept, full] * 2
    assert sum(map(sum, kept)) == round(0.25 * 256 * 3) + round(0.25 * 256 * 2)
    # carried calls: the VLM's first layer sees only the carried tokens (widest row) and the prompt
    assert first_layer == [3 * 256 + 48, 192 + 48, 192 + 48, 3 * 256 + 48] * 2


def test_carried_calls_reuse_the_refresh_selection_without_running_the_strategy():
    policy = make_deep("random", keep_ratio=0.3, encoder="carry_over", encoder_refresh=2)
    inputs = model_inputs(1, 3)
    calls(policy, inputs, 1)
    refreshed = policy.model.last_selection.keep_idx
    calls(policy, inputs, 1)
    assert torch.equal(policy.model.last_selection.keep_idx, refreshed)  # random would draw anew
    calls(policy, inputs, 1)
    assert not torch.equal(policy.model.last_selection.keep_idx, refreshed)


def test_in_encoder_keeps_each_cameras_share_after_the_cut_and_the_strategy_its_share_of_those():
    policy = make_deep("fastv", keep_ratio=0.5, encoder="in_encoder", encoder_keep_ratio=0.25)
    inputs = model_inputs(2, 3, missing=[(), (1,)], prompt_lengths=[7, 20])
    calls(policy, inputs, 1)
    trace = policy.model.last_trace
    assert trace.encoder_patches.tolist() == [[[256] * 3, [64] * 3]] * 2
    assert trace.valid_per_camera.tolist() == [[256, 256, 256], [256, 0, 256]]
    assert trace.kept_per_camera.sum(dim=1).tolist() == [96, 64]  # half of the 3 x 64 and 2 x 64 survivors
    assert trace.prefix_lengths[0] == 3 * 64 + 48


@pytest.mark.parametrize(
    "kwargs",
    [
        {"encoder": "in_encoder", "encoder_keep_ratio": 0.25},
        {"encoder": "carry_over", "encoder_refresh": 2},
        {"encoder": "in_encoder", "encoder_keep_ratio": 0.25, "pack_cameras": True},
    ],
)
def test_batch_equals_each_sample_alone(kwargs):
    policy = make_deep("fastv", keep_ratio=0.25, **kwargs)
    inputs = model_inputs(3, 3, missing=MISSING, prompt_lengths=PROMPTS)
    batched = calls(policy, inputs, 2)[-1]
    batch_kept = policy.model.last_trace.kept_per_camera
    for row in range(3):
        policy.reset()
        alone = calls(policy, select_rows(inputs, [row]), 2)[-1]
        torch.testing.assert_close(batched[row : row + 1], alone, atol=5e-7, rtol=0)
        assert policy.model.last_trace.kept_per_camera.tolist() == batch_kept[row : row + 1].tolist()


@pytest.mark.parametrize("strategy,kwargs", [("dtp", {"layers": [1, 2]}), ("vla_pruner", {}), ("ties", {})])
def test_in_encoder_refuses_strategies_that_need_the_full_grid(strategy, kwargs):
    with pytest.raises(
        ValueError, match=f"pruning.type={strategy} cannot follow pruning.encoder='in_encoder'"
    ):
        make_deep(strategy, encoder="in_encoder", **kwargs)


def test_encoder_flops_of_every_patch_are_the_vit_count_plus_the_projector():
    from lerobot_prune.flops import VisionDims, encoder_flops, vit_flops

    so400m = VisionDims(width=1152, mlp_dim=4304, depth=27, patches=256, patch_size=14, out_width=2048)
    full = encoder_flops(so400m, [[256, 256]] * 27)
    assert full == 2 * (vit_flops(1152, 4304, 27, 256, 14) + 2 * 256 * 1152 * 2048)
    half = encoder_flops(so400m, [[256, 256]] + [[128, 128]] * 26)
    assert 0.45 < half / full < 0.55


def _report_summary(**pruning) -> dict:
    policy = make_deep("fastv", **pruning)
    g = torch.Generator().manual_seed(3)
    batch = {f"observation.images.cam{i}": torch.rand(1, 3, 224, 224, generator=g) for i in range(3)}
    batch |= {"observation.state": torch.randn(1, 2, generator=g),
              "observation.language.tokens": torch.randint(4, 1000, (1, 48), generator=g),
              "observation.language.attention_mask": torch.ones(1, 48, dtype=torch.bool)}  # fmt: skip
    for _ in range(4):
        policy.predict_action_chunk(batch)
    return policy.report


def test_report_counts_encoder_patches_and_flops_and_they_fall_with_the_kept_share():
    off = _report_summary(keep_ratio=0.5).summary()
    assert off["encoder_flop_ratio"] == 1.0 and off["total_flop_ratio"] > off["flop_ratio"]
    ratios = []
    for keep in (1.0, 0.5, 0.25):
        report = _report_summary(keep_ratio=0.5, encoder="in_encoder", encoder_keep_ratio=keep)
        survivors = max(1, round(keep * 256))
        assert report.calls[-1]["encoder_patches_per_camera"] == [[256.0] * 3, [float(survivors)] * 3]
        ratios.append(report.summary()["encoder_flop_ratio"])
    assert ratios[0] == pytest.approx(1.0) and ratios[0] > ratios[1] > ratios[2]
    carry = _report_summary(keep_ratio=0.25, encoder="carry_over", encoder_refresh=4)
    assert [c["encoder_flop_ratio"] == 1.0 for c in carry.calls] == [True, False, False, False]
    assert carry.summary()["total_flop_ratio"] < off["total_flop_ratio"]


def test_packed_cameras_match_the_per_camera_loop():
    from lerobot_prune.engine.encoder import encode_full

    policy = make_deep("fastv", keep_ratio=0.25, pack_cameras=True)
    inputs = model_inputs(2, 3, missing=[(), (1,)], prompt_lengths=[7, 20])
    tower = policy.model.vision_tower(None)
    with torch.no_grad():
        packed = encode_full(tower, inputs["images"], pack=True)
        looped = encode_full(tower, inputs["images"], pack=False)
    for a, b in zip(packed, looped, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    loop = make_deep("fastv", keep_ratio=0.25)
    torch.testing.assert_close(policy.model.sample_actions(**inputs), loop.model.sample_actions(**inputs),
                               atol=1e-6, rtol=0)  # fmt: skip


def test_vision_dtype_bfloat16_runs_the_tower_in_bfloat16_and_float32_is_upstream():
    from lerobot_prune.engine.encoder import encode_full

    inputs = model_inputs(1, 3)
    bf16 = make_deep("fastv", keep_ratio=0.25, vision_dtype="bfloat16")
    with torch.no_grad():
        tokens = encode_full(bf16.model.vision_tower(torch.bfloat16), inputs["images"], pack=False)[0]
        full = encode_full(bf16.model.vision_tower(None), inputs["images"], pack=False)[0]
    assert torch.equal(tokens, tokens.to(torch.bfloat16).float())  # bfloat16 values (cast back as upstream)
    assert not torch.equal(tokens, full)
    torch.testing.assert_close(tokens, full, atol=0.05, rtol=0.05)
    fp32 = make_deep("fastv", keep_ratio=0.25, vision_dtype="float32")
    plain = make_deep("fastv", keep_ratio=0.25)
    expected = plain.model.sample_actions(**inputs)
    assert torch.equal(fp32.model.sample_actions(**inputs), expected)
    actions = bf16.model.sample_actions(**inputs)
    assert torch.isfinite(actions).all() and not torch.equal(actions, expected)
    torch.testing.assert_close(actions, expected, atol=0.1, rtol=0.1)


@pytest.mark.parametrize(
    "kwargs",
    [{"encoder": "in_encoder", "encoder_keep_ratio": 0.5}, {"encoder": "carry_over", "encoder_refresh": 2}],
)
def test_encoder_modes_compile_once_across_calls_and_episodes(kwargs):
    """carry_over's refresh and carried calls are two graphs, both built in the first episode."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    policy = make_deep("fastv", keep_ratio=0.25, **kwargs)
    inputs = model_inputs(1, 3, prompt_lengths=[9])
    eager = calls(policy, inputs, 3)
    policy.reset()
    torch._dynamo.reset()
    counters.clear()
    compiled = torch.compile(policy.model.sample_actions, backend="eager")
    first = [compiled(**inputs) for _ in range(3)]
    policy.reset()
    with torch._dynamo.config.patch(error_on_recompile=True):
        second = [compiled(**inputs) for _ in range(3)]
    assert not counters["recompiles"]
    for got, want in zip(first + second, eager + eager, strict=True):
        assert torch.equal(got, want)


# SmolVLA: a visual token is a 4 x 4 block of patches (pixel shuffle); 1024 patches -> 64 tokens per camera.
@functools.cache
def deep_smolvlm_dir() -> str:
    """The tiny SmolVLM with a 2-layer vision tower (in_encoder needs one layer on each side of its cut)."""
    import tempfile

    from lerobot_prune.families.smolvlm.tiny import make_tiny_smolvlm

    return str(make_tiny_smolvlm(tempfile.mkdtemp(prefix="deep_smolvlm_"), vision={"num_hidden_layers": 2}))


def make_smolvla(strategy: str = "fastv", base: bool = False, **pruning):
    """A tiny SmolVLA with the 2-layer tower: pruned with `strategy`, or (`base`) LeRobot's own."""
    config_cls, policy_cls, base_config_cls, base_cls = FAMILIES["smolvla"][:4]
    kwargs = config_kwargs(3, "smolvla") | {"vlm_model_name": deep_smolvlm_dir()}
    torch.manual_seed(0)
    if base:
        return base_cls(base_config_cls(**kwargs)).eval()
    return policy_cls(config_cls(pruning=make_pruning_config(strategy, **pruning), **kwargs)).eval()


def smolvla_inputs(policy) -> dict:
    """Three samples with missing cameras and fixed noise (SmolVLA draws its noise from the global RNG)."""
    inputs = model_inputs(3, 3, missing=MISSING, prompt_lengths=PROMPTS, family="smolvla")
    shape = (3, policy.config.chunk_size, policy.config.max_action_dim)
    inputs["noise"] = torch.randn(shape, generator=torch.Generator().manual_seed(4))
    return inputs


def test_smolvla_token_patches_are_the_pixel_shuffle_blocks():
    from lerobot_prune.families.smolvlm.tower import token_patch_grid

    policy = make_smolvla("fastv", keep_ratio=0.25, pack_cameras=True)
    tower = policy.model.vision_tower(None)
    assert tower.token_patches.shape == (64, 16) and tower.token_patches.unique().numel() == 1024
    # the connector's own pixel shuffle of a grid holding each patch's raster index
    grid = torch.arange(1024, dtype=torch.float32)[None, :, None]
    shuffled = policy.model.vlm_with_expert.get_vlm_model().connector.pixel_shuffle(grid, 4)[0].long()
    assert torch.equal(shuffled, token_patch_grid(32, 4))
    assert torch.equal(tower.token_patches, shuffled)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"encoder": "in_encoder", "encoder_keep_ratio": 1.0},
        {"encoder": "carry_over", "encoder_refresh": 3},
        {"pack_cameras": True},
    ],
)
def test_smolvla_keeping_every_patch_matches_upstream(kwargs):
    base = make_smolvla(base=True)
    pruned = make_smolvla("fastv", keep_ratio=1.0, **kwargs)
    pruned.load_state_dict(base.state_dict(), strict=True)
    inputs = smolvla_inputs(base)
    expected = base.model.sample_actions(**inputs)
    for actions in calls(pruned, inputs, 3):
        torch.testing.assert_close(actions, expected, atol=1e-5, rtol=1e-5)


def test_smolvla_in_encoder_and_carry_over_count_patches_in_blocks():
    inputs = model_inputs(2, 3, missing=[(), (1,)], prompt_lengths=[7, 20], family="smolvla")
    policy = make_smolvla("fastv", keep_ratio=0.5, encoder="in_encoder", encoder_keep_ratio=0.25)
    calls(policy, inputs, 1)
    trace = policy.model.last_trace
    assert trace.encoder_patches.tolist() == [[[1024] * 3, [16 * 16] * 3]] * 2  # 16 of 64 tokens kept
    assert trace.kept_per_camera.sum(dim=1).tolist() == [24, 16]  # half of 3 x 16 and 2 x 16 survivors
    carry = make_smolvla("fastv", keep_ratio=0.25, encoder="carry_over", encoder_refresh=2)
    calls(carry, inputs, 2)
    kept = carry.model.last_trace.kept_per_camera
    assert carry.model.last_trace.encoder_patches[:, -1].tolist() == (kept * 16).tolist()
    g = torch.Generator().manual_seed(3)
    batch = {f"observation.images.cam{i}": torch.rand(1, 3, 224, 224, generator=g) for i in range(3)}
    batch |= {"observation.state": torch.randn(1, 2, generator=g),
              "observation.language.tokens": torch.randint(4, 200, (1, 48), generator=g),
              "observation.language.attention_mask": torch.ones(1, 48, dtype=torch.bool)}  # fmt: skip
    carry.reset()
    for _ in range(2):
        carry.predict_action_chunk(batch)
    refresh, carried = carry.report.calls
    assert refresh["encoder_flop_ratio"] == 1.0 and 0.2 < carried["encoder_flop_ratio"] < 0.4
    assert carried["total_flop_ratio"] < refresh["total_flop_ratio"]


def test_smolvla_batch_equals_each_sample_alone_in_encoder():
    policy = make_smolvla(
        "fastv", keep_ratio=0.25, encoder="in_encoder", encoder_keep_ratio=0.5, compact=True
    )
    inputs = smolvla_inputs(policy)
    batched = calls(policy, inputs, 1)[0]
    for row in range(3):
        policy.reset()
        alone = calls(policy, select_rows(inputs, [row]), 1)[0]
        torch.testing.assert_close(batched[row : row + 1], alone, atol=5e-6, rtol=0)


def test_smolvla_encoder_layer_is_checked_against_its_tower_depth():
    config_cls = FAMILIES["smolvla"][0]
    with pytest.raises(
        ValueError, match=r"pruning.encoder_layer=2 is outside \[1, 1\] .*2 vision tower layers"
    ):
        config_cls(pruning=make_pruning_config("fastv", encoder="in_encoder", encoder_layer=2),
                   **config_kwargs(3, "smolvla") | {"vlm_model_name": deep_smolvlm_dir()})  # fmt: skip
