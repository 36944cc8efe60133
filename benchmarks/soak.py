"""Soak: many consecutive policy calls with each stateful strategy; does memory or the report grow?

Converts the committed MetaWorld π0 (checkpoints/pi0_metaworld_mt2) with each strategy (keep 25 %), then
runs `--episodes` episodes of `--calls` `predict_action_chunk` calls each (policy.reset() between episodes)
on preprocessed observations: a random image, a slowly moving state (so ADP's gate opens and closes) and the
task instruction. After every episode it records the process's resident memory (VmRSS) and the size of the
pruning report as JSON. Growth is a least-squares slope over the episodes after the first 10% (warm-up:
allocator pools, lazy imports), given per 1,000 calls. Writes one JSON with the method, settings and numbers.

    python benchmarks/soak.py --episodes=100 --calls=100 --out=benchmarks/results/soak_cpu.json
    # the same 10,000 calls per strategy at ~1/10 of the cost: a tiny random π0 with MetaWorld features
    lerobot-prune init-tiny --out=outputs/tiny_metaworld_pi0 --env_type=metaworld
    python benchmarks/soak.py --base=outputs/tiny_metaworld_pi0 --out=benchmarks/results/soak_cpu.json
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "pi0_metaworld_mt2"
STRATEGIES = ["vla_pruner", "adp", "ties", "random"]
TASK = "Press a button from the top"


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


def slope_per_1000_calls(values: list[float], calls_per_episode: int) -> float:
    start = max(1, len(values) // 10)
    ys = values[start:]
    xs = list(range(len(ys)))
    if len(ys) < 2:
        return 0.0
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
    return slope * 1000 / calls_per_episode


def load(strategy: str, work: Path, base: Path):
    from lerobot.configs import PreTrainedConfig
    from lerobot.policies.factory import get_policy_class, make_pre_post_processors

    import lerobot_policy_prune  # noqa: F401  (registers the pruned policy types)

    ckpt = work / strategy
    subprocess.run([shutil.which("lerobot-prune"), "convert", f"--base={base}", f"--out={ckpt}",
                    f"--pruning.type={strategy}", "--pruning.keep_ratio=0.25", "--overwrite=true"],
                   check=True, capture_output=True)  # fmt: skip
    config = PreTrainedConfig.from_pretrained(ckpt)
    if strategy == "ties":  # statistics of a typical spread of τ; what matters here is that TIES runs
        from lerobot_prune.strategies.ties import CALIBRATION_FILENAME

        policy = get_policy_class(config.type).from_pretrained(ckpt, config=config)  # to read backbone_info
        layer, keep = config.pruning.layer, config.pruning.keep_ratio
        from lerobot_prune.strategies.ties import calibration_record

        taus = [0.1 + 0.8 * i / 99 for i in range(100)]
        record = calibration_record(taus, policy.model.backbone_info, layer, keep, "soak (synthetic)")
        (ckpt / CALIBRATION_FILENAME).write_text(json.dumps(record))
    policy = get_policy_class(config.type).from_pretrained(ckpt, config=config).eval()
    preprocessor, _ = make_pre_post_processors(policy_cfg=config, pretrained_path=str(ckpt))
    return policy, preprocessor


def soak(strategy: str, episodes: int, calls: int, work: Path, base: Path) -> dict:
    policy, preprocessor = load(strategy, work, base)
    g = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, 224, 224, generator=g)
    rss, report_kb, latencies = [], [], []
    start = time.perf_counter()
    for episode in range(episodes):
        policy.reset()
        state = torch.zeros(1, 4)
        for call in range(calls):
            state = state + 0.02 * torch.randn(1, 4, generator=g) * (call % 20 < 10)  # moves, then rests
            batch = preprocessor({"observation.image": image, "observation.state": state, "task": [TASK]})
            t0 = time.perf_counter()
            policy.predict_action_chunk(batch)
            latencies.append((time.perf_counter() - t0) * 1e3)
        gc.collect()
        rss.append(rss_mb())
        report_kb.append(len(json.dumps(policy.report.to_dict())) / 1024)
        print(f"soak {strategy}: episode {episode + 1}/{episodes}, {(episode + 1) * calls} calls, "
              f"RSS {rss[-1]:.1f} MB, report {report_kb[-1]:.0f} KB", flush=True)  # fmt: skip
    return summary(strategy, rss, report_kb, calls, latencies, wall_s=time.perf_counter() - start)


def summary(strategy: str, rss: list[float], report_kb: list[float], calls: int, latencies: list[float] | None,
            wall_s: float | None = None) -> dict:  # fmt: skip
    ordered = sorted(latencies or [])
    return {
        "strategy": strategy,
        "calls": len(rss) * calls,
        "wall_s": wall_s,
        "latency_ms_p50": statistics.median(ordered) if ordered else None,
        "latency_ms_p95": ordered[round(0.95 * (len(ordered) - 1))] if ordered else None,
        "rss_mb_first_episode": rss[0],
        "rss_mb_last_episode": rss[-1],
        "rss_mb_per_1000_calls": slope_per_1000_calls(rss, calls),
        "report_kb_first_episode": report_kb[0],
        "report_kb_last_episode": report_kb[-1],
        "report_kb_per_1000_calls": slope_per_1000_calls(report_kb, calls),
        "rss_mb_per_episode": rss,
        "report_kb_per_episode": report_kb,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategies", nargs="+", default=STRATEGIES)
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--calls", type=int, default=100, help="calls per episode")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--base",
        type=Path,
        default=CHECKPOINT,
        help="π0 checkpoint with MetaWorld features to convert (default: the committed one); "
        "a smaller one (`lerobot-prune init-tiny --env_type=metaworld`) makes calls cheaper",
    )
    parser.add_argument("--out", default="outputs/soak.json")
    parser.add_argument(
        "--from_log",
        type=Path,
        default=None,
        help="rebuild the runs of an interrupted soak from its printed episode lines (no latency)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    if args.from_log is not None:
        for run in runs_from_log(args.from_log.read_text(), args.calls):
            write(out, run, args, source=f"episode lines of {args.from_log}")
        return
    with tempfile.TemporaryDirectory() as tmp:
        for strategy in args.strategies:
            write(
                out, soak(strategy, args.episodes, args.calls, Path(tmp), args.base), args, source="this run"
            )


def write(out: Path, run: dict, args, source: str) -> None:
    """Adds (or replaces) `run` in the JSON at `out`, so a soak can be split over several invocations."""
    result = json.loads(out.read_text()) if out.is_file() else {"method": __doc__.split("\n\n")[1].replace("\n", " "),
                                                                 "runs": []}  # fmt: skip
    run = {**run, "source": source, "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
           "machine": {"platform": platform.platform(), "python": platform.python_version(),
                       "torch": torch.__version__, "threads": args.threads}, "base": str(args.base)}  # fmt: skip
    result["runs"] = [r for r in result["runs"] if r["strategy"] != run["strategy"]] + [run]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    latency = f", p50 {run['latency_ms_p50']:.1f} ms" if run.get("latency_ms_p50") is not None else ""
    print(f"{run['strategy']:>10}: {run['calls']} calls, RSS {run['rss_mb_first_episode']:.0f} -> "
          f"{run['rss_mb_last_episode']:.0f} MB ({run['rss_mb_per_1000_calls']:+.2f} MB / 1000 calls), report "
          f"{run['report_kb_first_episode']:.0f} -> {run['report_kb_last_episode']:.0f} KB "
          f"({run['report_kb_per_1000_calls']:+.1f} KB / 1000 calls){latency} -> {out}", flush=True)  # fmt: skip


def runs_from_log(text: str, calls: int) -> list[dict]:
    """The runs of a soak's printed lines `soak S: episode i/N, c calls, RSS x MB, report y KB`."""
    series: dict[str, tuple[list[float], list[float]]] = {}
    for m in re.finditer(r"soak (\w+): episode \d+/\d+, \d+ calls, RSS ([\d.]+) MB, report (\d+) KB", text):
        rss, report = series.setdefault(m.group(1), ([], []))
        rss.append(float(m.group(2)))
        report.append(float(m.group(3)))
    return [summary(name, rss, report, calls, None) for name, (rss, report) in series.items()]


if __name__ == "__main__":
    main()
