"""`lerobot-prune bench`: per-call latency of every strategy against LeRobot's unmodified policy, in one process.

Method: LeRobot's unmodified flow-matching model (`PI0Pytorch` / `PI05Pytorch` / `VLAFlowMatching`) and
ours, both with the same random weights (seed 0), fixed inputs and noise, one sample. LeRobot's model is
timed first and last (its median over both passes is the baseline). Every (strategy, keep ratio) runs
`warmup` untimed calls (plus the strategy's own warm-up, e.g. VLA-Pruner's window; compilation happens
here) and then `iters` timed calls of `sample_actions` without a reset in between (temporal strategies keep
their state, as within an episode), each CUDA-synchronised on GPU; median and p95 per call. With
`--paired` (default) each timed call alternates with one of LeRobot's model, and the run's speed-up and
time ratio use the median of those paired calls, so drift in machine load affects both sides alike.
Extra passes (`--profile`, eager only), each with synchronisations of its own: the strategy clock (the strategy's own
share of the call) and the phase clock (vision encoder / prefix pass / denoising loop).
FLOP ratio: the VLM and expert (`flops.layer_flops` per layer); end-to-end FLOP ratio adds the vision tower,
which pruning never changes. The FLOP-allowed speed-up is 1 / end-to-end FLOP ratio. The phase-weighted
FLOP ratio weights each phase's FLOP ratio (vision 1, prefix, denoising) by that phase's share of
LeRobot's call time instead of its share of FLOPs: the prediction for hardware that runs the expert's
few-row matmuls at a different throughput than the prefix's.
Memory (CUDA): peak allocated during one call after warm-up, and above the resident weights. KV cache: the
prefix keys and values the denoising loop reads (computed from the per-layer prefix lengths).
Compiled runs (`--compile_model=true`, LeRobot's own `torch.compile` of `sample_actions`): dynamo's
cache is reset per run; `compiles_after_warmup` counts graphs compiled during the timed calls and during
a second episode (reset, then warm-up-many calls); it must be 0.
Bench-only settings: each strategy's `small_backbone_settings` (e.g. ADP's gate off, DTP's layers inside a
small backbone); strategies that need calibration use synthetic statistics.
"""

from __future__ import annotations

import json
import platform
import shlex
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..metrics import _percentile
from ..profiling import PhaseClock
from ..registry import build_pruner, list_strategies, make_pruning_config
from .bench_models import BenchModels, build_models
from .bench_report import LEROBOT, add_ratios, plot_bench, print_table
from .progress import progress_bar


@dataclass
class BenchArgs:
    policy_type: str = "pi0"  # pi0 | pi05 | smolvla
    size: str = "tiny"  # tiny | mid (CPU, compute-bound) | scaled (full proportions, 1/8-1/12 FLOPs) | full
    cameras: int = 3
    missing_cameras: int = 0  # of `cameras`, how many are padded (compact removes them)
    prompt_tokens: int = 20  # real language tokens; the rest of the tokenizer length is padding
    dtype: str = "float32"  # float32 | bfloat16 (LeRobot's `dtype`)
    device: str = "cpu"
    compile_model: bool = False  # LeRobot's `compile_model`: torch.compile of `sample_actions`
    compile_mode: str = "max-autotune"  # LeRobot's default
    num_steps: int = 10
    warmup: int = 2
    iters: int = 10
    compact: bool = True  # strategies run on top of the lossless compaction
    profile: bool = True  # eager only: the strategy-clock and phase-split passes
    paired: bool = True  # alternate each timed call with one of LeRobot's model; ratios use those pairs
    strategies: list[str] = field(default_factory=lambda: list(list_strategies()))
    keep_ratios: list[float] = field(default_factory=lambda: [0.5, 0.25, 0.125])
    out: str = "outputs/bench/bench.json"


def run_bench(args: BenchArgs, command: str | None = None) -> dict:
    _check(args)
    print(f"Building LeRobot's {args.policy_type} and the pruned one ({args.size}, {args.dtype}, "
          f"{args.device}) ...", file=sys.stderr, flush=True)  # fmt: skip
    models = build_models(args.policy_type, args.size, args.cameras, dtype=args.dtype, device=args.device,
                          num_steps=args.num_steps, compile_model=args.compile_model,
                          compile_mode=args.compile_mode, prompt_tokens=args.prompt_tokens)  # fmt: skip
    for i in range(args.missing_cameras):
        models.inputs["img_masks"][-1 - i].fill_(False)
    weights_mb = _allocated_mb(args)
    plan = [(name, ratio) for name in args.strategies
            for ratio in (args.keep_ratios if list_strategies()[name].sweep_field == "keep_ratio" else [1.0])]  # fmt: skip
    with progress_bar(len(plan) + 2, "bench", "run") as bar:  # + LeRobot's model first and last
        bar.set_postfix_str("lerobot")
        first = _measure(models.base, models, args, pruner=None)
        bar.update()
        runs = []
        for name, ratio in plan:
            bar.set_postfix_str(f"{name} keep={ratio}")
            models.pruned.pruner = _bench_pruner(name, ratio, args, models.pruned)
            runs.append({"strategy": name, "keep_ratio": ratio,
                         **_measure(models.pruned, models, args, pruner=name)})  # fmt: skip
            bar.write(f"{name} keep={ratio}: median {runs[-1]['median_ms']:.1f} ms", file=sys.stderr)
            bar.update()
        bar.set_postfix_str("lerobot")
        last = _measure(models.base, models, args, pruner=None)
        bar.update()
    baseline = {**first, "times": first["times"] + last["times"]}
    baseline.update(median_ms=statistics.median(baseline["times"]), p95_ms=_percentile(baseline["times"], 95))
    runs.insert(0, {"strategy": LEROBOT, "keep_ratio": 1.0, **baseline})
    add_ratios(runs, models, args.dtype)
    result = {"method": __doc__.strip().splitlines()[2:], "command": command, "args": asdict(args),
              "machine": _machine(args), "weights_mb": weights_mb, "runs": runs}  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    plot_path = plot_bench(result, out.with_suffix(".png"))
    print_table(runs)
    print(f"JSON: {out}\nPlot: {plot_path}")
    return result


def _check(args: BenchArgs) -> None:
    known = list_strategies()
    unknown = [s for s in args.strategies if s not in known]
    if unknown:
        raise ValueError(f"--strategies has unknown names {unknown}; choose from {sorted(known)}.")
    if not 0 <= args.missing_cameras < args.cameras:
        raise ValueError(
            f"--missing_cameras={args.missing_cameras} must be in [0, --cameras={args.cameras})."
        )
    if args.dtype not in ("float32", "bfloat16"):
        raise ValueError(f"--dtype={args.dtype!r} is not valid; choose float32 or bfloat16.")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device={args.device} but CUDA is not available here; use --device=cpu.")
    if args.iters < 2 or args.warmup < 0:
        raise ValueError(f"--iters={args.iters} must be >= 2 and --warmup={args.warmup} >= 0.")
    for ratio in args.keep_ratios:
        if not 0.0 < ratio <= 1.0:
            raise ValueError(f"--keep_ratios has {ratio}, outside (0, 1].")


def _bench_pruner(name: str, ratio: float, args: BenchArgs, model):
    config_cls = list_strategies()[name]
    fields = config_cls.small_backbone_settings(model.vlm_depth)
    if ratio < 1.0:
        fields["keep_ratio"] = ratio
    if config_cls.selects_tokens:  # `none` stays full vision, `compact` is compact by definition
        fields["compact"] = args.compact
    config = make_pruning_config(name, **fields)
    config.validate_for_model(model.vlm_depth)
    pruner = build_pruner(config)
    if config.needs_calibration:
        pruner.load_calibration(pruner.synthetic_calibration())
    return pruner


def _sync(args: BenchArgs) -> None:
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()


def _call_ms(model, inputs: dict, args: BenchArgs) -> float:
    _sync(args)
    start = time.perf_counter()
    model.sample_actions(**inputs)
    _sync(args)
    return (time.perf_counter() - start) * 1e3


def _measure(model, models: BenchModels, args: BenchArgs, pruner: str | None) -> dict:
    """Latency of `iters` calls after warm-up, and (eager) the strategy and phase passes."""
    from torch._dynamo.utils import counters

    if args.compile_model:
        torch._dynamo.reset()
    reset = getattr(model, "reset_pruning", lambda: None)
    window = getattr(getattr(model, "pruner", None), "config", None)
    warmup = args.warmup + (getattr(window, "window", 0) if pruner else 0)
    reset()
    for _ in range(warmup):
        model.sample_actions(**models.inputs)
    if pruner is not None and args.paired:
        models.base.sample_actions(**models.inputs)  # its compiled graphs were reset too
    graphs = counters["stats"]["unique_graphs"]
    _reset_peak(args)
    model.sample_actions(**models.inputs)
    memory = _peak(args)
    times, paired = [], []
    for _ in range(args.iters):
        times.append(_call_ms(model, models.inputs, args))
        if pruner is not None and args.paired:
            paired.append(_call_ms(models.base, models.inputs, args))
    result = {"times": times, "median_ms": statistics.median(times), "p95_ms": _percentile(times, 95),
              **memory}  # fmt: skip
    if paired:
        result["paired_lerobot_ms"] = statistics.median(paired)
    if pruner is not None:
        result["trace"] = model.last_trace
    if args.compile_model:
        reset()
        for _ in range(warmup + 1):
            model.sample_actions(**models.inputs)
        result["compiles_after_warmup"] = counters["stats"]["unique_graphs"] - graphs
        return result
    if not args.profile:
        return result if pruner is not None else {**result, **_phases(model, models, args)}
    if pruner is not None:
        overhead, profiled = [], []
        model.strategy_clock.enabled = True
        for _ in range(args.iters):
            profiled.append(_call_ms(model, models.inputs, args))
            overhead.append(model.strategy_clock.seconds * 1e3)
        model.strategy_clock.enabled = False
        result.update(strategy_ms=statistics.median(overhead),
                      overhead_share=statistics.median(overhead) / statistics.median(profiled))  # fmt: skip
    result.update(_phases(model, models, args))
    return result


def _phases(model, models: BenchModels, args: BenchArgs) -> dict:
    vlm = models.vlm_wrapper(model)
    splits = []
    for _ in range(args.iters):
        with PhaseClock(model, vlm, torch.device(args.device)) as clock:
            total = _call_ms(model, models.inputs, args)
        splits.append({**clock.ms, "prefix_ms": total - clock.ms["vision_ms"] - clock.ms["denoise_ms"]})
    return {
        key: statistics.median(s[key] for s in splits) for key in ("vision_ms", "prefix_ms", "denoise_ms")
    }


def _reset_peak(args: BenchArgs) -> None:
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()


def _allocated_mb(args: BenchArgs) -> float | None:
    return torch.cuda.memory_allocated() / 2**20 if args.device.startswith("cuda") else None


def _peak(args: BenchArgs) -> dict:
    if not args.device.startswith("cuda"):
        return {"peak_mb": None, "peak_above_weights_mb": None}
    peak = torch.cuda.max_memory_allocated() / 2**20
    return {"peak_mb": peak, "peak_above_weights_mb": peak - _allocated_mb(args)}


def _machine(args: BenchArgs) -> dict:
    import lerobot
    import transformers

    info = {"python": platform.python_version(), "torch": torch.__version__, "lerobot": lerobot.__version__,
            "transformers": transformers.__version__, "platform": platform.platform(),
            "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads()}  # fmt: skip
    if args.device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name()
        info["cuda"] = torch.version.cuda
    return info


def command_line(argv: list[str]) -> str:
    return shlex.join(["lerobot-prune", "bench", *argv])
