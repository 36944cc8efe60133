"""`lerobot-prune bench`: per-call latency of strategies side by side in one process, with FLOP ratios.

Method: one random-weight π0 (tiny, or full Gemma-2B/300M + SigLIP-So400m), fixed inputs and noise;
every (strategy, keep ratio) runs `warmup` untimed calls (plus the strategy's own warm-up, e.g.
VLA-Pruner's window) then `iters` timed calls of `sample_actions` without a reset in between (temporal
strategies keep their state, as within an episode), CUDA-synchronised on GPU. Reports median and p95,
the time ratio to `none` and the FLOP ratio. A second pass of `iters` calls with the strategy clock on
(`StrategyClock`: prepare/select/observe and the expert-attention hooks, each CUDA-synchronised) gives
the strategy's own overhead as a share of that pass's median call latency.
Bench-only settings: TIES uses synthetic calibration statistics, ADP runs with its gate off (static),
DTP on the tiny backbone uses layers [1, 2].
"""

from __future__ import annotations

import json
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .backbones.arch import TINY_ARCH
from .metrics import _percentile
from .registry import build_pruner, list_strategies, make_pruning_config

SYNTHETIC_TIES_STATS = {"version": 1, "tau_median": 0.0, "tau_p5": -0.1, "tau_p95": 0.1}


@dataclass
class BenchArgs:
    size: str = "tiny"  # "tiny" (CPU-friendly) or "full" (π0: Gemma-2B + Gemma-300M + SigLIP-So400m)
    cameras: int = 3
    missing_cameras: int = 0  # of `cameras`, how many are padded (compact removes them)
    prompt_tokens: int = 20  # valid language tokens of 48
    dtype: str = "float32"  # "float32" or "bfloat16"
    device: str = "cpu"
    num_steps: int = 10
    warmup: int = 2
    iters: int = 10
    strategies: list[str] = field(default_factory=lambda: list(list_strategies()))
    keep_ratios: list[float] = field(default_factory=lambda: [0.5, 0.25, 0.125])
    out: str = "outputs/bench/bench.json"


def _build_model(args: BenchArgs):
    from lerobot.configs import FeatureType, PolicyFeature

    from lerobot_policy_prune.pruned_pi0.configuration_pruned_pi0 import PrunedPI0Config

    from .backbones.paligemma import PrunedPI0Pytorch

    inputs = {
        f"observation.images.cam{i}": PolicyFeature(FeatureType.VISUAL, (3, 224, 224))
        for i in range(args.cameras)
    }
    config = PrunedPI0Config(
        input_features=inputs, output_features={"action": PolicyFeature(FeatureType.ACTION, (7,))},
        dtype=args.dtype, device=args.device, num_inference_steps=args.num_steps,
        arch_override=dict(TINY_ARCH) if args.size == "tiny" else None,
    )  # fmt: skip
    torch.manual_seed(0)
    return PrunedPI0Pytorch(config).to(args.device).eval(), config


def _inputs(args: BenchArgs, config):
    g = torch.Generator().manual_seed(0)
    dev = args.device
    images = [(torch.rand(1, 3, 224, 224, generator=g) * 2 - 1).to(dev) for _ in range(args.cameras)]
    masks = [torch.tensor([i < args.cameras - args.missing_cameras], device=dev) for i in range(args.cameras)]
    lang_masks = (torch.arange(48) < args.prompt_tokens)[None].to(dev)
    return dict(images=images, img_masks=masks, lang_tokens=torch.randint(4, 1000, (1, 48), generator=g).to(dev),
                lang_masks=lang_masks, state=torch.randn(1, 32, generator=g).to(dev),
                noise=torch.randn(1, config.chunk_size, 32, generator=g).to(dev))  # fmt: skip


def _time(model, inputs, args: BenchArgs) -> list[float]:
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    model.reset_pruning()
    for _ in range(args.warmup + getattr(model.pruner.config, "window", 0)):
        model.sample_actions(**inputs)
    sync()
    times = []
    for _ in range(args.iters):
        start = time.perf_counter()
        model.sample_actions(**inputs)
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def _time_one(model, inputs, args: BenchArgs) -> list[float]:
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    sync()
    start = time.perf_counter()
    model.sample_actions(**inputs)
    sync()
    return [(time.perf_counter() - start) * 1e3]


def _bench_pruner(name: str, ratio: float, args: BenchArgs, model):
    fields = {"keep_ratio": ratio} if ratio < 1.0 else {}
    if name == "adp":
        fields["gate"] = False
    if name == "dtp" and args.size == "tiny":
        fields["layers"] = [1, 2]
    config = make_pruning_config(name, **fields)
    config.validate_for_model(len(model.language_model.layers))
    pruner = build_pruner(config)
    if name == "ties":
        pruner.load_calibration(
            {**SYNTHETIC_TIES_STATS, "layer": config.layer, "keep_ratio": config.keep_ratio}
        )
    return pruner


def run_bench(args: BenchArgs) -> dict:
    model, config = _build_model(args)
    inputs = _inputs(args, config)
    vlm, expert = model.layer_dims
    runs = []
    for name in args.strategies:
        ratios = args.keep_ratios if "keep_ratio" in make_pruning_config(name).__dataclass_fields__ else [1.0]
        for ratio in ratios:
            model.pruner = _bench_pruner(name, ratio, args, model)
            times = _time(model, inputs, args)
            model.strategy_clock.enabled = True
            overhead, profiled = [], []
            for _ in range(args.iters):
                profiled.extend(_time_one(model, inputs, args))
                overhead.append(model.strategy_clock.seconds * 1e3)
            model.strategy_clock.enabled = False
            trace = model.last_trace
            prefix, denoise = trace.flops(vlm, expert)
            full = trace.flops(vlm, expert, [trace.full_length] * len(trace.prefix_lengths))
            runs.append({"strategy": name, "keep_ratio": ratio, "median_ms": statistics.median(times),
                         "p95_ms": _percentile(times, 95), "flop_ratio": (prefix + denoise) / sum(full),
                         "kept_visual": int(trace.kept_per_camera.sum()), "prefix_lengths": trace.prefix_lengths,
                         "strategy_ms": statistics.median(overhead),
                         "overhead_share": statistics.median(overhead) / statistics.median(profiled)})  # fmt: skip
            print(f"{name} keep={ratio}: median {runs[-1]['median_ms']:.1f} ms", file=sys.stderr)
    baseline = next(r["median_ms"] for r in runs if r["strategy"] == "none")
    for r in runs:
        r["time_ratio"] = r["median_ms"] / baseline
    result = {"method": __doc__.strip().splitlines()[2:], "args": asdict(args), "machine": _machine(args),
              "runs": runs}  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"{'strategy':<24}{'keep':>7}{'kept':>7}{'median ms':>11}{'p95 ms':>9}{'time ratio':>12}"
          f"{'FLOP ratio':>12}{'strategy share':>16}")  # fmt: skip
    for r in runs:
        print(f"{r['strategy']:<24}{r['keep_ratio']:>7}{r['kept_visual']:>7}{r['median_ms']:>11.1f}{r['p95_ms']:>9.1f}"
              f"{r['time_ratio']:>12.2f}{r['flop_ratio']:>12.2f}{r['overhead_share']:>16.1%}")  # fmt: skip
    print(f"JSON: {args.out}")
    return result


def _machine(args: BenchArgs) -> dict:
    import lerobot

    info = {"python": platform.python_version(), "torch": torch.__version__, "lerobot": lerobot.__version__,
            "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads()}  # fmt: skip
    if args.device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name()
    return info
