"""`lerobot-prune bench`: the harness's JSON, plot and accounting on tiny models (timings are not asserted)."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from lerobot_prune.registry import build_pruner, make_pruning_config
from lerobot_prune.tools.bench import BenchArgs, run_bench
from lerobot_prune.tools.bench_models import build_models


@pytest.mark.parametrize("policy_type", ["pi0", "pi05", "smolvla"])
def test_bench_models_share_weights_and_none_equals_lerobot(policy_type):
    models = build_models(policy_type, "tiny", 2, dtype="float32", device="cpu", num_steps=2,
                          compile_model=False, compile_mode="default")  # fmt: skip
    assert type(models.base).__name__ in ("PI0Pytorch", "PI05Pytorch", "VLAFlowMatching")
    models.pruned.pruner = build_pruner(make_pruning_config("none"))
    expected = models.base.sample_actions(**models.inputs)
    assert torch.equal(models.pruned.sample_actions(**models.inputs), expected)
    models.pruned.pruner = build_pruner(make_pruning_config("random", keep_ratio=0.25))
    assert not torch.equal(models.pruned.sample_actions(**models.inputs), expected)
    assert models.vision_flops > 0


def test_bench_writes_json_and_plot_with_ratios_against_lerobot(tmp_path):
    out = tmp_path / "bench.json"
    args = BenchArgs(size="tiny", cameras=2, missing_cameras=1, num_steps=2, warmup=1, iters=2,
                     strategies=["none", "compact", "random", "fastv"], keep_ratios=[0.5, 0.25], out=str(out))  # fmt: skip
    result = run_bench(args, command="lerobot-prune bench ...")
    saved = json.loads(out.read_text())
    assert saved["command"] == "lerobot-prune bench ..." and saved["machine"]["lerobot"]
    runs = {(r["strategy"], r["keep_ratio"]): r for r in saved["runs"]}
    assert [r["strategy"] for r in result["runs"]][:2] == ["lerobot", "none"]
    assert runs[("lerobot", 1.0)]["time_ratio"] == 1.0 and runs[("lerobot", 1.0)]["flop_ratio"] == 1.0
    assert runs[("none", 1.0)]["flop_ratio"] == 1.0 and runs[("none", 1.0)]["kept_visual"] == 256
    # One of two cameras is padded: compaction drops it (and the language padding) without pruning.
    assert runs[("compact", 1.0)]["flop_ratio"] < 0.7 and runs[("compact", 1.0)]["kv_cache_saving"] > 0.3
    for ratio, kept in ((0.5, 128), (0.25, 64)):
        for name in ("random", "fastv"):
            r = runs[(name, ratio)]
            assert r["kept_visual"] == kept
            assert 0 < r["flop_ratio"] < r["e2e_flop_ratio"] < 1  # the vision tower is never pruned
            assert r["flop_allowed_speedup"] == pytest.approx(1 / r["e2e_flop_ratio"])
            assert r["kv_cache_mb"] < runs[("none", 1.0)]["kv_cache_mb"]
            assert r["strategy_ms"] >= 0 and min(r["vision_ms"], r["prefix_ms"], r["denoise_ms"]) > 0
    # Random prunes before the VLM, FastV after layer 2: random saves more.
    assert runs[("random", 0.25)]["flop_ratio"] < runs[("fastv", 0.25)]["flop_ratio"]
    assert runs[("random", 0.25)]["flop_ratio"] < runs[("random", 0.5)]["flop_ratio"]
    assert Image.open(out.with_suffix(".png")).size == (1100, 700)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("strategies", ["fastv", "nope"], "unknown names ['nope']"), ("missing_cameras", 3, "--missing_cameras=3"),
     ("keep_ratios", [0.0], "outside (0, 1]"), ("dtype", "float16", "--dtype='float16'"),
     ("size", "huge", "--size='huge'")],
)  # fmt: skip
def test_bench_rejects_bad_arguments_before_building(field, value, message, tmp_path):
    args = BenchArgs(**{field: value}, out=str(tmp_path / "b.json"))
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        run_bench(args)
    assert not (tmp_path / "b.json").exists()
