"""Wall-clock of encoder-side selection (`pruning.encoder`, `pack_cameras`, `vision_dtype`) against LeRobot's
unpruned model and the same strategy with the tower run in full, in one process on the same weights.

Method: LeRobot's model and ours built by `lerobot-prune bench`'s `build_models` (random weights drawn once,
seed 0, copied into every variant) at `--size` ("scaled": the full architecture at half of its widths and a
third (π0) or half (SmolVLA) of its depths, so the vision tower keeps its full-size share of the call;
"full": the real sizes), `--cameras` cameras, a 20-token prompt, 10 denoising steps. Calls are interleaved:
each round calls every variant once, in a rotating order, so load on the machine falls on all of them alike;
`--warmup` rounds are dropped, then each variant's state is reset and `--rounds` rounds are timed (CUDA
synchronised per call). carry_over's calls follow its refresh schedule as in an episode, so rounds should be a
multiple of its refresh interval. Reported per variant: median, p95 and mean ms per call; `time_ratio` = mean
over LeRobot's mean (a mean, because carry_over alternates slow refresh and fast carried calls and its FLOP
ratio is a mean too); the pruning report's encoder and total FLOP ratios over the timed calls; and
`time_vs_flops` = time_ratio / total_flop_ratio (1.0: the FLOPs saved are the time saved).

    python benchmarks/encoder_bench.py [--policy_type pi0|smolvla] [--size scaled|full] [--device cpu|cuda]
        [--cameras 3] [--rounds 8] [--out outputs/bench/encoder.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from pathlib import Path

import torch

from lerobot_prune import build_pruner, make_pruning_config
from lerobot_prune.metrics import PruningReport
from lerobot_prune.profiling import PhaseClock
from lerobot_prune.tools.bench_models import build_models

LEROBOT = "lerobot (unpruned)"
BASE = {"keep_ratio": 0.25, "compact": True}
VARIANTS = {  # name -> (strategy, fields; FastV's on top of BASE)
    "none (ours, unpruned)": ("none", {}),
    "fastv 0.25 post-encoder (tower in full)": ("fastv", {}),
    "fastv 0.25 + pack_cameras": ("fastv", {"pack_cameras": True}),
    "fastv 0.25 + carry_over (refresh 4)": ("fastv", {"encoder": "carry_over", "encoder_refresh": 4}),
    "fastv 0.25 + carry_over (refresh 8)": ("fastv", {"encoder": "carry_over", "encoder_refresh": 8}),
    "fastv 0.5 + in_encoder (layer 1, keep 0.5)": (
        "fastv",
        {
            "keep_ratio": 0.5,
            "encoder": "in_encoder",
            "encoder_layer": 1,
            "encoder_keep_ratio": 0.5,
        },
    ),  # fmt: skip
    "fastv 0.25 + vision_dtype bfloat16": ("fastv", {"vision_dtype": "bfloat16"}),
}
PHASES = {"vision_ms": "encoder_gflops", "prefix_ms": "prefix_gflops", "denoise_ms": "denoise_gflops"}


def pruning_fields(name: str) -> dict:
    strategy, fields = VARIANTS[name]
    return BASE | fields if strategy == "fastv" else fields


def variants(models) -> dict[str, torch.nn.Module]:
    """LeRobot's model, then one copy of ours per entry of VARIANTS with that strategy installed."""
    out = {LEROBOT: models.base}
    for name, (strategy, _) in VARIANTS.items():
        model = copy.deepcopy(models.pruned)
        config = make_pruning_config(strategy, **pruning_fields(name))
        config.validate_for_model(model.vlm_depth)
        model._init_pruning(build_pruner(config))
        out[name] = model
    return out


def phase_ms(built, calls: int) -> dict:
    """Median vision / prefix / denoise ms of LeRobot's model per call (PhaseClock, a separate pass)."""
    device = built.inputs["noise"].device
    splits = []
    for _ in range(calls):
        with PhaseClock(built.base, built.vlm_wrapper(built.base), device) as clock:
            total = timed_call(built.base, built.inputs)
        splits.append({**clock.ms, "prefix_ms": total - clock.ms["vision_ms"] - clock.ms["denoise_ms"]})
    return {key: statistics.median(s[key] for s in splits) for key in PHASES}


def phase_weighted_ratio(summary: dict, unpruned: dict, phases: dict) -> float:
    """Time ratio predicted by weighting each phase's FLOP ratio with its share of LeRobot's call time."""
    return sum(
        ms * summary[g] / unpruned[g] for ms, g in zip(phases.values(), PHASES.values(), strict=True)
    ) / sum(phases.values())


def timed_call(model, inputs: dict) -> float:
    start = time.perf_counter()
    model.sample_actions(**inputs)
    if inputs["noise"].is_cuda:
        torch.cuda.synchronize()
    return (time.perf_counter() - start) * 1e3


def run_rounds(models: dict, inputs: dict, warmup: int, rounds: int) -> tuple[dict, dict]:
    """Times of every variant over `rounds` interleaved rounds, and the pruning report of each pruned one."""
    names = list(models)
    reports = {name: PruningReport(name, {}, [f"cam{i}" for i in range(len(inputs["images"]))])
               for name in names[1:]}  # fmt: skip
    times = {name: [] for name in names}
    for r in range(warmup + rounds):
        if r == warmup:
            for name in names[1:]:
                models[name].reset_pruning()
        for name in names[r % len(names) :] + names[: r % len(names)]:
            ms = timed_call(models[name], inputs)
            if r >= warmup:
                times[name].append(ms)
                if name in reports:
                    m = models[name]
                    reports[name].add_call(m.last_trace, ms / 1e3, *m.layer_dims, m.vision_dims)
        print(f"round {r + 1}/{warmup + rounds}" + (" (warm-up)" if r < warmup else ""), flush=True)
    return times, {name: report.summary() for name, report in reports.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy_type", default="pi0", choices=["pi0", "pi05", "smolvla"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", default=None, help="scaled (CPU default) or full (GPU default)")
    parser.add_argument("--dtype", default=None, help="float32 (CPU default) or bfloat16 (GPU default)")
    parser.add_argument("--cameras", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--out", default="outputs/bench/encoder.json")
    args = parser.parse_args()
    gpu = args.device.startswith("cuda")
    size, dtype = args.size or ("full" if gpu else "scaled"), args.dtype or ("bfloat16" if gpu else "float32")
    print(__doc__.split("\n\n")[1])
    built = build_models(args.policy_type, size, args.cameras, dtype=dtype, device=args.device, num_steps=10,
                         compile_model=False, compile_mode="default")  # fmt: skip
    models = variants(built)
    with torch.no_grad():
        times, summaries = run_rounds(models, built.inputs, args.warmup, args.rounds)
        phases = phase_ms(built, args.rounds)
    unpruned = summaries["none (ours, unpruned)"]
    base_mean = statistics.mean(times[LEROBOT])
    runs = []
    for name, ts in times.items():
        s = summaries.get(name, {"encoder_flop_ratio": 1.0, "total_flop_ratio": 1.0})
        run = {"variant": name, "pruning": pruning_fields(name) if name in VARIANTS else None,
               "median_ms": statistics.median(ts), "p95_ms": sorted(ts)[round(0.95 * (len(ts) - 1))],
               "mean_ms": statistics.mean(ts), "times_ms": ts, "time_ratio": statistics.mean(ts) / base_mean,
               "encoder_flop_ratio": s["encoder_flop_ratio"], "total_flop_ratio": s["total_flop_ratio"]}  # fmt: skip
        run["time_vs_flops"] = run["time_ratio"] / run["total_flop_ratio"]
        run["phase_weighted_flop_ratio"] = (
            phase_weighted_ratio(s, unpruned, phases) if name in summaries else 1.0
        )
        runs.append(run)
        print(f"{name:45s} median {run['median_ms']:8.1f} ms  p95 {run['p95_ms']:8.1f}  mean {run['mean_ms']:8.1f}"
              f"  time x{run['time_ratio']:.2f}  FLOPs x{run['total_flop_ratio']:.2f} (encoder "
              f"x{run['encoder_flop_ratio']:.2f})  time/FLOPs {run['time_vs_flops']:.2f}  phase-weighted FLOPs "
              f"x{run['phase_weighted_flop_ratio']:.2f}")  # fmt: skip
    unpruned_gflops = sum(unpruned[g] for g in PHASES.values())
    meta = {"policy_type": args.policy_type, "device": args.device, "size": size, "dtype": dtype,
            "cameras": args.cameras, "warmup": args.warmup, "rounds": args.rounds, "torch": torch.__version__,
            "threads": torch.get_num_threads(), "gpu": torch.cuda.get_device_name() if gpu else None,
            "unpruned_gflops": unpruned_gflops, "tower_share_unpruned": unpruned["encoder_gflops"] / unpruned_gflops,
            "lerobot_phase_ms": phases,
            "lerobot_phase_gflops_per_s": {k: unpruned[g] / ms * 1e3 for (k, g), ms in zip(PHASES.items(), phases.values(), strict=True)}}  # fmt: skip
    print(f"tower: {meta['tower_share_unpruned']:.0%} of the unpruned call's {unpruned_gflops:.1f} GFLOPs; LeRobot's "
          "phases: " + ", ".join(f"{k[:-3]} {ms:.0f} ms ({meta['lerobot_phase_gflops_per_s'][k]:.0f} GFLOP/s)"
                                 for k, ms in phases.items()))  # fmt: skip
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"method": " ".join(__doc__.split("\n\n")[1].split()), **meta, "runs": runs},
                               indent=2))  # fmt: skip
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
