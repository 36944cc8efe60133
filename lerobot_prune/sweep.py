"""`lerobot-prune sweep`: LeRobot's eval at every (strategy, setting) grid point; table and plot.

Each point is a checkpoint converted from `--policy_path` into `<out>/ckpts/<point>` (weights linked),
evaluated in this process by LeRobot's `eval_main` into `<out>/runs/<point>`. Strategies with a
`keep_ratio` sweep `--keep_ratios`, DTP sweeps `--dtp_taus`, the others run once. Every point is
converted (and so validated) before the first eval. Arguments other than the ones below go to
LeRobot's eval (`--env.type=pusht --eval.n_episodes=10 ...`).
"""

from __future__ import annotations

import csv
import json
import logging
import shutil
from dataclasses import dataclass, field, fields
from pathlib import Path

import draccus

from .config import PruningConfig
from .convert import convert
from .evalrun import parse_eval_config, run_eval, split_args
from .plot import Point, scatter
from .registry import list_strategies, make_pruning_config
from .strategies.ties import CALIBRATION_FILENAME

logger = logging.getLogger(__name__)
COLUMNS = ("point", "strategy", "setting", "success_pc", "avg_sum_reward", "latency_ms_p50", "latency_ms_p95",
           "mean_kept_visual", "flop_ratio", "n_episodes", "run_dir")  # fmt: skip


@dataclass
class SweepArgs:
    """Args:
    policy_path: Checkpoint to sweep (pi0 or pruned_pi0 folder); each point is converted from it.
    strategies: Strategies to run (see `lerobot-prune list`).
    keep_ratios: Keep ratios for strategies that have one.
    dtp_taus: DTP's tolerance values (DTP has no keep ratio).
    settings: Extra fields per strategy, e.g. '{dtp: {layers: [1, 2]}, fastv: {layer: 1}}'.
    out: Output folder (ckpts/, runs/, results.json|csv|md, success_vs_latency.png).
    """

    policy_path: str = ""
    strategies: list[str] = field(default_factory=lambda: ["fastv", "random"])
    keep_ratios: list[float] = field(default_factory=lambda: [0.5, 0.25, 0.125])
    dtp_taus: list[float] = field(default_factory=lambda: [0.5, 0.8, 1.22])
    settings: dict[str, dict] = field(default_factory=dict)
    out: str = "outputs/sweep"


def main(argv: list[str]) -> list[dict]:
    own, lerobot_args = split_args(argv, tuple(f.name for f in fields(SweepArgs)))
    args = draccus.parse(SweepArgs, args=own)
    if taken := [a for a in lerobot_args if a.split("=", 1)[0] in ("--policy.path", "--output_dir")]:
        raise ValueError(
            f"{taken}: sweep sets --policy.path and --output_dir itself; use --policy_path and --out."
        )
    grid = make_grid(args)
    out = Path(args.out)
    checkpoints = [_convert_point(args, name, pruning, out / "ckpts" / name) for name, pruning, _ in grid]
    rows = []
    for i, ((name, pruning, setting), ckpt) in enumerate(zip(grid, checkpoints, strict=True), start=1):
        run_args = [f"--policy.path={ckpt}", f"--output_dir={out / 'runs' / name}", *lerobot_args]
        run = run_eval(run_args, parse_eval_config(run_args))
        summary = run.report.summary()
        rows.append({
            "point": name, "strategy": pruning.type, "setting": setting,
            "success_pc": run.overall["pc_success"], "avg_sum_reward": run.overall["avg_sum_reward"],
            "latency_ms_p50": summary["latency_ms_median"], "latency_ms_p95": summary["latency_ms_p95"],
            "mean_kept_visual": summary["mean_kept_visual"], "flop_ratio": summary["flop_ratio"],
            "n_episodes": run.overall["n_episodes"], "run_dir": str(run.output_dir),
        })  # fmt: skip
        print(f"[{i}/{len(grid)}] {pruning.type} {setting or '-'}: success {rows[-1]['success_pc']:.1f}%, "
              f"p50 {rows[-1]['latency_ms_p50']:.1f} ms, kept {rows[-1]['mean_kept_visual']:.0f}", flush=True)  # fmt: skip
    write_results(rows, out)
    return rows


def make_grid(args: SweepArgs) -> list[tuple[str, PruningConfig, str]]:
    """(point name, pruning config, setting label) per grid point; raises on any bad value first."""
    known = list_strategies()
    if not args.policy_path or not Path(args.policy_path).is_dir():
        raise FileNotFoundError(f"--policy_path={args.policy_path!r} is not a checkpoint folder.")
    if bad := [s for s in args.strategies if s not in known]:
        raise ValueError(f"--strategies has unknown {bad}; known strategies: {', '.join(known)}.")
    if not args.strategies:
        raise ValueError("--strategies is empty; e.g. --strategies='[fastv,random]'.")
    if bad := [s for s in args.settings if s not in args.strategies]:
        raise ValueError(f"--settings names {bad}, which are not in --strategies={args.strategies}.")
    grid = []
    for strategy in args.strategies:
        extra = dict(args.settings.get(strategy, {}))
        names = {f.name for f in fields(known[strategy])}
        if strategy == "dtp":
            values = [("tau", t) for t in _nonempty(args.dtp_taus, "--dtp_taus")]
        elif "keep_ratio" in names:
            values = [("keep_ratio", r) for r in _nonempty(args.keep_ratios, "--keep_ratios")]
        else:
            values = [(None, None)]
        for key, value in values:
            kwargs = extra | ({key: value} if key else {})
            label = f"{key}={value}" if key else ""  # the plot shows it as "<strategy> <value>"
            grid.append(
                (
                    f"{strategy}_{key}{value}" if key else strategy,
                    make_pruning_config(strategy, **kwargs),
                    label,
                )
            )
    return grid


def write_results(rows: list[dict], out: Path) -> dict[str, Path]:
    """results.json, results.csv, results.md and success_vs_latency.png in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "results.json", "csv": out / "results.csv", "md": out / "results.md"}
    paths["json"].write_text(json.dumps(rows, indent=2))
    with paths["csv"].open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    paths["md"].write_text(markdown_table(rows))
    points = [Point(r["latency_ms_p50"], r["success_pc"], _short(r), r["strategy"]) for r in rows]
    paths["png"] = scatter(points, out / "success_vs_latency.png", x_label="p50 latency per inference call (ms)",
                           y_label="success (%)", title="Success against latency per sweep point", y_range=(0, 100))  # fmt: skip
    print(markdown_table(rows))
    print(f"sweep: {len(rows)} points -> {paths['csv']}, {paths['md']}, {paths['png']}")
    return paths


def markdown_table(rows: list[dict]) -> str:
    header = "| strategy | setting | success % | sum reward | p50 ms | p95 ms | kept visual | FLOP ratio |"
    lines = [header, "|" + "---|" * 8]
    for r in rows:
        lines.append(
            f"| {r['strategy']} | {r['setting'] or '-'} | {r['success_pc']:.1f} | {r['avg_sum_reward']:.3f} | "
            f"{r['latency_ms_p50']:.1f} | {r['latency_ms_p95']:.1f} | {r['mean_kept_visual']:.0f} | "
            f"{r['flop_ratio']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def _nonempty(values: list[float], flag: str) -> list[float]:
    if not values:
        raise ValueError(f"{flag} is empty; give at least one value, e.g. {flag}='[0.5]'.")
    return values


def _convert_point(args: SweepArgs, name: str, pruning: PruningConfig, target: Path) -> Path:
    """Converts one point; carries the base's `compact=true` and TIES calibration over."""
    base = Path(args.policy_path)
    base_pruning = json.loads((base / "config.json").read_text()).get("pruning") or {}
    if base_pruning.get("compact") and "compact" not in args.settings.get(pruning.type, {}):
        pruning.compact = True  # lossless, so a compact base stays compact at every point
    ckpt = convert(base, target, pruning)
    if (base / CALIBRATION_FILENAME).is_file():
        shutil.copy2(base / CALIBRATION_FILENAME, ckpt / CALIBRATION_FILENAME)
    return ckpt


def _short(row: dict) -> str:
    value = row["setting"].split("=", 1)[1] if row["setting"] else ""
    return f"{row['strategy']} {value}".strip()
