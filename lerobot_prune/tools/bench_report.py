"""`lerobot-prune bench`'s results: the ratios against LeRobot's model, the printed table and the plot."""

from __future__ import annotations

from pathlib import Path

from ..flops import kv_cache_bytes
from ..registry import list_strategies
from .bench_models import BenchModels
from .plot import Point, scatter

LEROBOT = "lerobot"  # the row of LeRobot's unmodified model


def add_ratios(runs: list[dict], models: BenchModels, dtype: str) -> None:
    """FLOP ratios, speed-ups and KV-cache sizes; replaces each run's trace by its summary."""
    vlm, expert = models.pruned.layer_dims
    traces = [r["trace"] for r in runs if "trace" in r]
    full_lengths = [traces[0].full_length] * models.pruned.vlm_depth
    full_prefix, full_denoise = traces[0].flops(vlm, expert, full_lengths)
    full = full_prefix + full_denoise
    phases = [runs[0].get(k) for k in ("vision_ms", "prefix_ms", "denoise_ms")]
    value_bytes = 2 if dtype == "bfloat16" else 4
    full_kv = kv_cache_bytes(vlm, full_lengths, value_bytes)
    baseline = runs[0]["median_ms"]
    for r in runs:
        trace = r.pop("trace", None)
        prefix, denoise = trace.flops(vlm, expert) if trace is not None else (full_prefix, full_denoise)
        flops = prefix + denoise
        lengths = trace.prefix_lengths if trace is not None else full_lengths
        kv = kv_cache_bytes(vlm, lengths, value_bytes)
        e2e = (models.vision_flops + flops) / (models.vision_flops + full)
        speedup = r.get("paired_lerobot_ms", baseline) / r["median_ms"]
        r.update(
            kept_visual=int(trace.kept_per_camera.sum()) if trace is not None else None,
            mean_prefix_length=sum(lengths) / len(lengths),
            time_ratio=1 / speedup, speedup=speedup, p95_over_median=r["p95_ms"] / r["median_ms"],
            flop_ratio=flops / full, e2e_flop_ratio=e2e, flop_allowed_speedup=1 / e2e,
            flop_efficiency=speedup * e2e, kv_cache_mb=kv / 2**20, kv_cache_saving=1 - kv / full_kv,
            phase_weighted_flop_ratio=None if None in phases else (
                (phases[0] + phases[1] * prefix / full_prefix + phases[2] * denoise / full_denoise) / sum(phases)),
        )  # fmt: skip
        r.pop("times")


def print_table(runs: list[dict]) -> None:
    def fmt(value, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    header = ("strategy", "keep", "kept", "median ms", "p95 ms", "speed-up", "FLOP-allowed", "of allowed",
              "vision", "prefix", "denoise", "strategy %", "KV MB")  # fmt: skip
    print("".join(f"{h:>13}" if i else f"{h:<26}" for i, h in enumerate(header)))
    for r in runs:
        cells = (r["keep_ratio"], fmt(r["kept_visual"], "d"), fmt(r["median_ms"], ".1f"), fmt(r["p95_ms"], ".1f"),
                 fmt(r["speedup"], ".2f"), fmt(r["flop_allowed_speedup"], ".2f"), fmt(r["flop_efficiency"], ".0%"),
                 fmt(r.get("vision_ms"), ".1f"), fmt(r.get("prefix_ms"), ".1f"), fmt(r.get("denoise_ms"), ".1f"),
                 fmt(r.get("overhead_share"), ".1%"), fmt(r["kv_cache_mb"], ".2f"))  # fmt: skip
        print(f"{r['strategy']:<26}" + "".join(f"{c!s:>13}" for c in cells))


def plot_bench(result: dict, path: Path) -> Path:
    """Median latency against keep ratio per strategy (solid), with each run's FLOP-ratio ideal (hollow:
    LeRobot's latency times the end-to-end FLOP ratio)."""
    runs = result["runs"]
    baseline = runs[0]["median_ms"]
    points = []
    plotted = [LEROBOT] + [n for n, c in list_strategies().items() if not (c.is_reference or c.is_ablation)]
    if len({r["strategy"] for r in runs}) > len(plotted):  # ablations and rank baselines stay in the JSON
        runs = [r for r in runs if r["strategy"] in plotted]
    for r in runs:
        label = f"{r['strategy']} {r['speedup']:.2f}x" if r["keep_ratio"] < 1.0 else r["strategy"]
        points.append(Point(r["keep_ratio"], r["median_ms"], label, r["strategy"]))
        if r["strategy"] != LEROBOT:
            points.append(
                Point(r["keep_ratio"], baseline * r["e2e_flop_ratio"], "", r["strategy"], hollow=True)
            )
    a = result["args"]
    title = (f"{a['policy_type']} {a['size']}, {a['cameras']} cameras, {a['dtype']}, {a['device']}"
             f"{', compiled' if a['compile_model'] else ''}: latency vs keep ratio (hollow = FLOP ideal)")  # fmt: skip
    return scatter(points, path, x_label="kept fraction of visual tokens", y_label="median ms per call",
                   title=title, size=(1100, 700), connect=True)  # fmt: skip
