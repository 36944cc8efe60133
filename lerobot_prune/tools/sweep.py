"""`lerobot-prune sweep`: LeRobot's eval over strategies x settings (x compact), resumable and sharded.

A *cell* is one pruning configuration: a checkpoint converted from `--policy_path` into `<out>/ckpts/<cell>`
(weights linked; TIES cells are calibrated there). Its `--eval.n_episodes` episodes run as *shards* of
`--shard_episodes` consecutive seeds (one shard when 0): shard k runs LeRobot's `eval_main` with
`--seed=<seed> + k * shard_episodes`, so every cell sees the same (task, seed) pairs whatever the sharding
or backend. A finished shard is written to `<out>/shards/<cell>/<seeds>.json`, a finished cell to
`<out>/cells/<cell>.json`; rerunning the same command skips them. `--backend=local` runs shards one after
another in this process, `--backend=ray` as Ray tasks (`lerobot_prune.tools.sweep_backends`). Arguments other
than the ones below go to LeRobot's eval (`--env.type=pusht --eval.n_episodes=10 --seed=1000 ...`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import draccus

from ..config import PruningConfig
from ..registry import list_strategies, make_pruning_config
from ..strategies.ties_calibration import CALIBRATION_FILENAME
from .convert import convert
from .evalrun import parse_eval_config, split_args
from .sweep_backends import BACKENDS, RayArgs, Shard, run_shards
from .sweep_manifest import MANIFEST, check_manifest, manifest, write_manifest
from .sweep_progress import SweepProgress
from .sweep_results import write_results

logger = logging.getLogger(__name__)
SET_BY_SWEEP = ("--policy.path", "--output_dir", "--seed", "--eval.n_episodes", "--eval.batch_size")
# A strategy's `sweep_field` -> the `SweepArgs` list of values swept for it.
SWEPT_VALUES = {"keep_ratio": "keep_ratios", "tau": "dtp_taus"}


@dataclass
class TiesCalibrationArgs:
    """How TIES cells are calibrated (`lerobot-prune calibrate` on each TIES cell's checkpoint).

    Args:
        dataset_repo_id: LeRobot dataset id (read locally from dataset_root).
        dataset_root: Local folder of that dataset.
        frames: Frames to calibrate on (the paper uses 100).
    """

    dataset_repo_id: str | None = None
    dataset_root: str | None = None
    frames: int = 100


@dataclass
class SweepArgs:
    """Args:
    policy_path: Checkpoint to sweep (pi0 or pruned_pi0 folder); each cell is converted from it.
    strategies: Strategies to run (see `lerobot-prune list`); `[all]` (or `all`) means every registered one.
    keep_ratios: Keep ratios for strategies that have one.
    dtp_taus: DTP's tolerance values (DTP has no keep ratio).
    settings: Extra fields per strategy, e.g. '{dtp: {layers: [1, 2]}, fastv: {layer: 1}}'. A cell with
        `encoder` set is named with its mode (`fastv_keep_ratio0.25_compact_carry_over`), so encoder-mode
        cells sit beside post-encoder ones in one sweep.
    compact: Values of `pruning.compact` to sweep, e.g. '[false,true]'; default: the base checkpoint's.
    shard_episodes: Episodes per shard (consecutive seeds); 0 runs each cell as one shard.
    ties_calibration: Dataset that TIES cells are calibrated on before their eval.
    backend: "local" (shards one after another in this process) or "ray" (one Ray task per shard).
    torch_threads: Torch CPU threads per shard; 0: torch's default locally, --ray.num_cpus_per_task (at
        least 1) under Ray. Per-episode results are bit-identical across backends at equal thread counts.
    ray: Ray options (--ray.address, --ray.num_cpus, --ray.num_cpus_per_task).
    videos: Keep LeRobot's episode videos (10 per task per shard, a second MuJoCo render per step).
    overwrite: Start over when `out` holds a sweep made with other eval arguments or other cell settings.
    plot: Write the success plots (needs matplotlib: pip install 'lerobot_policy_prune[plot]').
    out: Output folder (sweep.json, ckpts/, runs/, shards/, cells/, results.*, *.png).
    """

    policy_path: str = ""
    strategies: list[str] = field(default_factory=lambda: ["fastv", "random"])
    keep_ratios: list[float] = field(default_factory=lambda: [0.5, 0.25, 0.125])
    dtp_taus: list[float] = field(default_factory=lambda: [0.5, 0.8, 1.22])
    settings: dict[str, dict] = field(default_factory=dict)
    compact: list[bool] | None = None
    shard_episodes: int = 0
    ties_calibration: TiesCalibrationArgs = field(default_factory=TiesCalibrationArgs)
    backend: str = "local"
    torch_threads: int = 0
    ray: RayArgs = field(default_factory=RayArgs)
    videos: bool = False
    overwrite: bool = False
    plot: bool = True
    out: str = "outputs/sweep"


@dataclass
class Cell:
    name: str
    pruning: PruningConfig
    setting: str  # "keep_ratio=0.25", "tau=0.8" or ""


def main(argv: list[str]) -> list[dict]:
    own, lerobot_args = split_args(argv, tuple(f.name for f in fields(SweepArgs)))
    own = ["--strategies=[all]" if a == "--strategies=all" else a for a in own]  # draccus wants a list
    args = draccus.parse(SweepArgs, args=own)
    if taken := [a for a in lerobot_args if a.split("=", 1)[0] in ("--policy.path", "--output_dir")]:
        raise ValueError(
            f"{taken}: sweep sets --policy.path and --output_dir itself; use --policy_path and --out."
        )
    if args.backend not in BACKENDS:
        raise ValueError(f"--backend={args.backend!r} is not valid; choose one of {BACKENDS}.")
    if args.torch_threads < 0:
        raise ValueError(f"--torch_threads={args.torch_threads} must be >= 0 (0: see --help).")
    if args.shard_episodes < 0:
        raise ValueError(f"--shard_episodes={args.shard_episodes} must be >= 0 (0: one shard per cell).")
    if args.plot:
        _require_matplotlib()
    cells = make_grid(args)
    out = Path(args.out)
    wanted = check_manifest(out, manifest(args, cells, lerobot_args), overwrite=args.overwrite)
    # LeRobot's eval arguments are checked on the first cell before any calibration or eval
    first = _cell_checkpoint(args, cells[0], out / "ckpts" / cells[0].name)
    cfg = parse_eval_config([f"--policy.path={first}", f"--output_dir={out / 'runs'}", *lerobot_args])
    write_manifest(out, wanted)
    checkpoints = {cell.name: prepare_cell(args, cell, out / "ckpts" / cell.name) for cell in cells}
    plan = {cell.name: plan_shards(cell.name, cfg.seed, cfg.eval.n_episodes, cfg.eval.batch_size,
                                   args.shard_episodes) for cell in cells}  # fmt: skip
    eval_args = [a for a in lerobot_args if a.split("=", 1)[0] not in SET_BY_SWEEP]
    progress = SweepProgress(cells, plan, out)
    todo = [s for cell in cells for s in plan[cell.name] if not progress.shard_path(s).is_file()]
    progress.start(len(todo))
    try:
        threads = args.torch_threads or (
            max(1, int(args.ray.num_cpus_per_task)) if args.backend == "ray" else 0
        )
        specs = [_spec(s, checkpoints[s.cell], out, eval_args) | {"torch_threads": threads, "videos": args.videos}
                 for s in todo]  # fmt: skip
        run_shards(specs, args.backend, args.ray, progress.shard_done)
    finally:
        progress.close()
    return write_results(finished_records(out), out, plot=args.plot)


def finished_records(out: Path) -> list[dict]:
    """Every finished cell of the sweep in `out` (all grids run there), in the order cells were added."""
    cells = json.loads((out / MANIFEST).read_text())["cells"]
    paths = [out / "cells" / f"{name}.json" for name in cells]
    return [json.loads(p.read_text()) for p in paths if p.is_file()]


def manifest_cells(out: Path) -> dict[str, Cell]:
    """The cells recorded in the sweep folder `out`, by name (their settings as the sweep ran them)."""
    found = json.loads((out / MANIFEST).read_text())["cells"]
    return {name: Cell(name, make_pruning_config(c["type"], **{k: v for k, v in c.items() if k != "type"}), "")
            for name, c in found.items()}  # fmt: skip


def make_grid(args: SweepArgs) -> list[Cell]:
    """The sweep's cells in order; raises on any bad value before any work."""
    known = list_strategies()
    if not args.policy_path or not Path(args.policy_path).is_dir():
        raise FileNotFoundError(f"--policy_path={args.policy_path!r} is not a checkpoint folder.")
    strategies = list(known) if args.strategies == ["all"] else args.strategies
    if not strategies:
        raise ValueError("--strategies is empty; e.g. --strategies='[fastv,random]' or --strategies=all.")
    if bad := [s for s in strategies if s not in known]:
        raise ValueError(f"--strategies has unknown {bad}; known strategies: {', '.join(known)} (or all).")
    if bad := [s for s in args.settings if s not in strategies]:
        raise ValueError(f"--settings names {bad}, which are not in --strategies={strategies}.")
    if args.compact is not None and not args.compact:
        raise ValueError("--compact is empty; e.g. --compact='[false,true]', or leave it out.")
    base_compact = bool((_base_pruning(args.policy_path)).get("compact"))
    cells: list[Cell] = []
    for strategy in strategies:
        config_cls, extra = known[strategy], dict(args.settings.get(strategy, {}))
        key = config_cls.sweep_field
        if key is None:
            values = [(None, None)]
        else:
            option = SWEPT_VALUES[key]
            values = [(key, v) for v in _nonempty(getattr(args, option), f"--{option}")]
        fixed_compact = next(f.default for f in fields(config_cls) if f.name == "compact")
        if "compact" in extra:
            compacts = [extra.pop("compact")]
        elif fixed_compact:  # e.g. `compact`, which is compact by definition
            compacts = [True]
        else:
            compacts = args.compact if args.compact is not None else [base_compact]
        for key, value in values:
            for compact in dict.fromkeys(compacts):
                pruning = make_pruning_config(
                    strategy, **(extra | ({key: value} if key else {})), compact=compact
                )
                name = (
                    (f"{strategy}_{key}{value}" if key else strategy)
                    + ("_compact" if compact and not fixed_compact else "")
                    + ("_blind" if pruning.blind else "")
                    + (f"_{pruning.encoder}" if pruning.encoder != "off" else "")
                )
                cells.append(Cell(name, pruning, f"{key}={value}" if key else ""))
    if (ties := [c.name for c in cells if c.pruning.needs_calibration]) and not (
        args.ties_calibration.dataset_repo_id and args.ties_calibration.dataset_root
    ):
        raise ValueError(
            f"TIES cells {ties} need calibration statistics: pass --ties_calibration.dataset_repo_id=<id> and "
            "--ties_calibration.dataset_root=<local LeRobot dataset> (each TIES cell is calibrated with "
            "`lerobot-prune calibrate` on it before its eval), or leave ties out of --strategies."
        )
    return cells


def plan_shards(
    cell: str, seed: int | None, n_episodes: int, batch_size: int, shard_episodes: int
) -> list[Shard]:
    """Consecutive seed ranges covering `n_episodes` (LeRobot gives episode i the seed `seed + i`)."""
    if seed is None:
        raise ValueError("sweep pairs episodes by seed; give LeRobot's --seed=<int> (not null).")
    size = shard_episodes or n_episodes
    return [
        Shard(cell, seed + start, min(size, n_episodes - start), min(batch_size, size, n_episodes - start))
        for start in range(0, n_episodes, size)
    ]


def _cell_checkpoint(args: SweepArgs, cell: Cell, target: Path) -> Path:
    """The cell's converted checkpoint (weights hard-linked to the base's); a resumed sweep (same manifest)
    reuses it, calibration included. convert writes atomically, so an existing folder is complete."""
    if (target / "config.json").is_file():
        return target
    return convert(Path(args.policy_path), target, cell.pruning, link_weights=True)


def prepare_cell(args: SweepArgs, cell: Cell, target: Path) -> Path:
    """The cell's checkpoint in `target`, converted from `args.policy_path` and calibrated if it needs it."""
    ckpt = _cell_checkpoint(args, cell, target)
    if cell.pruning.needs_calibration and not (ckpt / CALIBRATION_FILENAME).is_file():
        from .calibrate import CalibrateArgs, calibrate

        calib = args.ties_calibration
        calibrate(CalibrateArgs(policy_path=str(ckpt), dataset_repo_id=calib.dataset_repo_id,
                                dataset_root=calib.dataset_root, frames=calib.frames))  # fmt: skip
    return ckpt


def _spec(shard: Shard, ckpt: Path, out: Path, eval_args: list[str]) -> dict:
    return {**asdict(shard), "ckpt": str(ckpt), "run_dir": str(out / "runs" / shard.cell / shard.label),
            "eval_args": eval_args}  # fmt: skip


def _base_pruning(policy_path: str) -> dict:
    config = Path(policy_path) / "config.json"
    return (json.loads(config.read_text()).get("pruning") or {}) if config.is_file() else {}


def _nonempty(values: list[float], flag: str) -> list[float]:
    if not values:
        raise ValueError(f"{flag} is empty; give at least one value, e.g. {flag}='[0.5]'.")
    return values


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ValueError(
            "sweep draws its plots with matplotlib, which is not installed: "
            "pip install 'lerobot_policy_prune[plot]', or pass --plot=false."
        ) from None
