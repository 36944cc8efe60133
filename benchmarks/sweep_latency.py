"""Per-call latency of every cell of a `lerobot-prune sweep`, side by side in one process, on recorded episodes.

Method: each finished cell's checkpoint (`<sweep>/ckpts/<cell>`, as the sweep writes it: converted from
`--policy_path` with the cell's settings from `sweep.json`, TIES cells calibrated on `--dataset_*`; written
here when absent) is loaded with LeRobot's factories. The episodes of a local LeRobotDataset are replayed as an eval
episode calls the policy: every cell is reset at an episode's start, then gets LeRobot's `select_action` on
every frame (which predicts a chunk every `n_action_steps` frames and pops a queued action in between), so
temporal strategies (VLA-Pruner's window, TIES's anchors, ADP's state-driven gate, carry_over's refresh) see
a real episode's sequence. At each frame every cell is called once, in an order that rotates from frame to
frame, so load on the machine falls on all cells alike. Only the calls that predict a chunk are timed (the
policy call), and not those of the first `--warmup` chunks of the replay. Reported per cell: median, p95 and
mean ms per policy call (`time.perf_counter` around `select_action`, under `torch.inference_mode` as in
LeRobot's eval; CUDA-synchronised on GPU), the ratio of its mean to the `none` cell's mean, and the mean FLOP
ratios (VLM + expert, and total with the vision tower) and kept visual tokens of the timed calls (the pruning
report). The replayed frames are the dataset's (already at the
policy's resolution), so the per-call resize of a full-size camera frame is not in these times.

    python benchmarks/sweep_latency.py --sweep benchmarks/results/metaworld_sweep \
        --policy_path checkpoints/pi0_metaworld_mt2 --dataset_repo_id local/metaworld_mt2 --dataset_root outputs/metaworld_calib [--episodes 10]

Writes `<sweep>/latency.json` and rewrites the sweep's results (results.md/json/csv, plots) with these
latencies; a later `lerobot-prune sweep` into the same folder keeps using them.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

import lerobot_policy_prune  # noqa: F401  (registers the pruned policy types)
from lerobot_prune.metrics import _percentile
from lerobot_prune.tools.sweep import (
    SweepArgs,
    TiesCalibrationArgs,
    finished_records,
    manifest_cells,
    prepare_cell,
)
from lerobot_prune.tools.sweep_results import LATENCY_FILE, REPLAY_LATENCY, write_results
from lerobot_prune.tools.visualize import load_pruned_policy


def cell_checkpoints(args: argparse.Namespace) -> dict[str, Path]:
    """The checkpoint of every wanted finished cell, in the sweep's order; written where it is absent."""
    sweep = Path(args.sweep)
    recorded = manifest_cells(sweep)
    done = [c for c in recorded if (sweep / "cells" / f"{c}.json").is_file()]
    cells = args.cells.split(",") if args.cells else done
    if unknown := [c for c in cells if c not in done]:
        raise SystemExit(f"--cells has {unknown}, which are not finished cells of {sweep}; finished: {done}.")
    if "none" not in cells:
        raise SystemExit(f"the cells {cells} have no `none` cell to compare with; add none to --cells.")
    settings = SweepArgs(policy_path=args.policy_path, ties_calibration=TiesCalibrationArgs(
        dataset_repo_id=args.dataset_repo_id, dataset_root=args.dataset_root))  # fmt: skip
    return {c: prepare_cell(settings, recorded[c], sweep / "ckpts" / c) for c in cells}


def episodes(repo_id: str, root: str, count: int) -> list[list[dict]]:
    """The frames of the first `count` episodes, as batches of one sample."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    dataset = LeRobotDataset(repo_id, root=root)
    out = []
    for episode in range(min(count, dataset.meta.total_episodes)):
        start = int(dataset.meta.episodes[episode]["dataset_from_index"])
        end = int(dataset.meta.episodes[episode]["dataset_to_index"])
        frames = []
        for index in range(start, end):
            item = dataset[index]
            batch = {k: v.unsqueeze(0) if isinstance(v, torch.Tensor) else v for k, v in item.items()}
            batch["task"] = [item["task"]]
            frames.append(batch)
        out.append(frames)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", required=True, help="a lerobot-prune sweep folder")
    parser.add_argument(
        "--policy_path", required=True, help="the checkpoint the sweep ran on (its --policy_path)"
    )
    parser.add_argument("--dataset_repo_id", required=True)
    parser.add_argument("--dataset_root", required=True)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2, help="untimed frames at the start")
    parser.add_argument("--cells", default=None, help="comma-separated cells (default: every finished one)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    sweep = Path(args.sweep)
    print(__doc__.split("\n\n")[1], flush=True)
    checkpoints = cell_checkpoints(args)
    cells = list(checkpoints)
    policies = {c: load_pruned_policy(str(path), args.device, {})[:2] for c, path in checkpoints.items()}
    replay = episodes(args.dataset_repo_id, args.dataset_root, args.episodes)
    times: dict[str, list[float]] = {c: [] for c in cells}
    calls = {c: [] for c in cells}
    chunks = 0  # chunk boundaries replayed so far
    for e, frames in enumerate(replay):
        for policy, _ in policies.values():
            policy.reset()
        for f, batch in enumerate(frames):
            order = cells[f % len(cells) :] + cells[: f % len(cells)]
            boundary = not policies["none"][
                0
            ].actions_queued()  # every cell has the checkpoint's n_action_steps
            for cell in order:
                policy, preprocessor = policies[cell]
                if policy.actions_queued() == boundary:
                    raise SystemExit(
                        f"{cell} predicts its chunks on other frames than `none`: other n_action_steps?"
                    )
                inputs = preprocessor(dict(batch))
                with torch.inference_mode():
                    start = time.perf_counter()
                    policy.select_action(inputs)
                    if args.device.startswith("cuda"):
                        torch.cuda.synchronize()
                    ms = (time.perf_counter() - start) * 1e3
                if boundary and chunks >= args.warmup:
                    times[cell].append(ms)
                    calls[cell].append(policy.report.calls[-1])
            chunks += boundary
        print(
            f"episode {e + 1}/{len(replay)}: {len(frames)} frames, {chunks} policy calls per cell so far",
            flush=True,
        )
    base = statistics.fmean(times["none"])
    rows = []
    for cell in cells:
        ts = times[cell]
        rows.append({
            "cell": cell, "calls": len(ts), "latency_ms_p50": statistics.median(ts),
            "latency_ms_p95": _percentile(ts, 95), "latency_ms_mean": statistics.fmean(ts),
            "time_ratio": statistics.fmean(ts) / base,
            "flop_ratio": statistics.fmean(c["flop_ratio"] for c in calls[cell]),
            "total_flop_ratio": statistics.fmean(c["total_flop_ratio"] for c in calls[cell])
            if all("total_flop_ratio" in c for c in calls[cell]) else None,
            "mean_kept_visual": statistics.fmean(sum(r) for c in calls[cell] for r in c["kept_visual_per_camera"]),
        })  # fmt: skip
        r = rows[-1]
        print(f"{cell:50s} p50 {r['latency_ms_p50']:7.1f} ms  p95 {r['latency_ms_p95']:7.1f}  "
              f"time x{r['time_ratio']:.2f}  FLOPs x{r['flop_ratio']:.2f} (total x{r['total_flop_ratio'] or float('nan'):.2f})  kept {r['mean_kept_visual']:.0f}")  # fmt: skip
    record = {
        "method": " ".join(__doc__.split("\n\n")[1].split()), "source": REPLAY_LATENCY,
        "command": " ".join([Path(sys.executable).name, *sys.argv]), "dataset_repo_id": args.dataset_repo_id,
        "episodes": len(replay), "frames": sum(map(len, replay)), "warmup": args.warmup, "device": args.device,
        "torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.platform(),
        "cells": rows,
    }  # fmt: skip
    (sweep / LATENCY_FILE).write_text(json.dumps(record, indent=2))
    print(f"wrote {sweep / LATENCY_FILE}")
    write_results(finished_records(sweep), sweep)


if __name__ == "__main__":
    main()
