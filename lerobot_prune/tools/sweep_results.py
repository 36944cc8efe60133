"""A sweep's records and tables: per-episode outcomes per shard and cell, success with Wilson intervals per
task and overall, and the paired exact McNemar test of each cell against the unpruned `none` cell.

LeRobot's `eval_info.json` lists, per task, the episodes' successes and rewards in episode order; the seed
of episode i is the shard's first seed + i (`lerobot_eval.eval_policy`). Episodes are paired across cells
by (task, seed). The latency columns come from the episodes' policy calls, or, when the sweep folder holds
`latency.json` (`benchmarks/sweep_latency.py`: every cell timed side by side in one process), from there,
with that replay's time ratio to `none` and total FLOP ratio (vision tower + VLM + expert).
"""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

from ..metrics import PruningReport, _percentile
from ..registry import is_reference
from ..stats import mcnemar_exact, paired_counts, wilson_interval

COLUMNS = ("cell", "strategy", "setting", "compact", "n_episodes", "successes", "success_pc", "ci95_low_pc",
           "ci95_high_pc", "avg_sum_reward", "flop_ratio", "latency_ms_p50", "latency_ms_p95", "latency_source",
           "time_ratio", "total_flop_ratio", "mean_kept_visual", "vs_none_b", "vs_none_c", "vs_none_p", "run_dirs")  # fmt: skip
LATENCY_FILE = "latency.json"
REPLAY_LATENCY = "replay"  # latency.json's `source`
TASK_COLUMNS = ("cell", "task", "n_episodes", "successes", "success_pc", "ci95_low_pc", "ci95_high_pc")


def shard_record(spec: dict, info: dict, report: PruningReport, wall_s: float) -> dict:
    """One shard's per-episode outcomes and per-call measurements (the first call is a warm-up)."""
    labels = _task_labels(info["per_task"])
    episodes = []
    for task in info["per_task"]:
        metrics = task["metrics"]
        for i, (success, sum_reward, max_reward) in enumerate(
            zip(metrics["successes"], metrics["sum_rewards"], metrics["max_rewards"], strict=True)
        ):
            episodes.append({
                "task": labels[task["task_group"], task["task_id"]], "task_group": task["task_group"],
                "task_id": task["task_id"], "seed": spec["seed"] + i, "success": bool(success),
                "sum_reward": float(sum_reward), "max_reward": float(max_reward),
            })  # fmt: skip
    calls = list(report.calls)
    return {
        "cell": spec["cell"], "seed": spec["seed"], "n_episodes": spec["n_episodes"],
        "batch_size": spec["batch_size"], "run_dir": spec["run_dir"], "wall_s": wall_s,
        "episodes": sorted(episodes, key=lambda e: (e["task"], e["seed"])),
        "calls": len(calls),
        "latency_ms": [c["latency_ms"] for c in calls[1:]] or [c["latency_ms"] for c in calls],
        "flop_ratio": [c["flop_ratio"] for c in calls],
        "kept_visual": [sum(row) for c in calls for row in c["kept_visual_per_camera"]],
    }  # fmt: skip


def cell_record(name: str, strategy: str, setting: str, compact: bool, shards: list[dict]) -> dict:
    """Merges a cell's shard records (all its episodes and calls)."""
    episodes = sorted((e for s in shards for e in s["episodes"]), key=lambda e: (e["task"], e["seed"]))
    latency = [x for s in shards for x in s["latency_ms"]]
    flops = [x for s in shards for x in s["flop_ratio"]]
    kept = [x for s in shards for x in s["kept_visual"]]
    return {
        "cell": name, "strategy": strategy, "setting": setting, "compact": compact,
        "n_episodes": len(episodes), "successes": sum(e["success"] for e in episodes),
        "avg_sum_reward": statistics.fmean(e["sum_reward"] for e in episodes) if episodes else float("nan"),
        "latency_ms_p50": statistics.median(latency) if latency else float("nan"),
        "latency_ms_p95": _percentile(latency, 95) if latency else float("nan"),
        "flop_ratio": statistics.fmean(flops) if flops else float("nan"),
        "mean_kept_visual": statistics.fmean(kept) if kept else float("nan"),
        "calls": sum(s["calls"] for s in shards), "wall_s": sum(s["wall_s"] for s in shards),
        "run_dirs": [s["run_dir"] for s in shards], "episodes": episodes,
    }  # fmt: skip


def success_stats(episodes: list[dict]) -> dict:
    k, n = sum(e["success"] for e in episodes), len(episodes)
    low, high = wilson_interval(k, n)
    return {"n_episodes": n, "successes": k, "success_pc": 100 * k / n if n else float("nan"),
            "ci95_low_pc": 100 * low, "ci95_high_pc": 100 * high}  # fmt: skip


def cell_summary_line(record: dict) -> str:
    s = success_stats(record["episodes"])
    return (f"{record['cell']}: success {s['success_pc']:.1f}% [{s['ci95_low_pc']:.1f}, {s['ci95_high_pc']:.1f}] "
            f"(n={s['n_episodes']}), FLOP ratio {record['flop_ratio']:.2f}, p50 {record['latency_ms_p50']:.1f} ms, "
            f"kept {record['mean_kept_visual']:.0f}")  # fmt: skip


def result_rows(records: list[dict]) -> list[dict]:
    """One row per cell: overall and per-task success with 95 % Wilson intervals, cost, and the exact McNemar
    test against the `none` cell with the same `compact` (else any `none` cell) on the shared (task, seed)."""
    references = [r for r in records if is_reference(r["strategy"])]
    rows = []
    for record in records:
        ref = next((r for r in references if r["compact"] == record["compact"]), None) or next(
            iter(references), None
        )
        row = {k: record[k] for k in ("cell", "strategy", "setting", "compact", "avg_sum_reward", "flop_ratio",
                                       "latency_ms_p50", "latency_ms_p95", "mean_kept_visual")}  # fmt: skip
        row |= success_stats(record["episodes"])
        row["vs_none_b"] = row["vs_none_c"] = row["vs_none_p"] = None
        if ref is not None and ref is not record:
            counts = paired_counts(_outcomes(ref), _outcomes(record))
            row |= {"vs_none_cell": ref["cell"], "vs_none_pairs": counts["pairs"], "vs_none_b": counts["b"],
                    "vs_none_c": counts["c"], "vs_none_p": mcnemar_exact(counts["b"], counts["c"])}  # fmt: skip
        tasks = sorted({e["task"] for e in record["episodes"]})
        row["per_task"] = {t: success_stats([e for e in record["episodes"] if e["task"] == t]) for t in tasks}
        row["run_dirs"] = record["run_dirs"]
        rows.append(row)
    return rows


def with_replay_latency(rows: list[dict], out: Path) -> list[dict]:
    """Rows whose latency is `out/latency.json`'s where it has the cell (`latency_source` "replay"; the
    episodes' own figures move to `episode_latency_ms_p50|p95`; the replay's `time_ratio` and
    `total_flop_ratio` are added), else the episodes' ("episodes")."""
    path = out / LATENCY_FILE
    replay = {c["cell"]: c for c in json.loads(path.read_text())["cells"]} if path.is_file() else {}
    for row in rows:
        row["latency_source"] = "episodes"
        if (timed := replay.get(row["cell"])) is not None:
            row["episode_latency_ms_p50"], row["episode_latency_ms_p95"] = (
                row["latency_ms_p50"],
                row["latency_ms_p95"],
            )
            row |= {k: timed[k] for k in ("latency_ms_p50", "latency_ms_p95", "time_ratio")}
            row["total_flop_ratio"] = timed.get("total_flop_ratio")
            row["latency_source"] = REPLAY_LATENCY
    return rows


def write_results(records: list[dict], out: Path, *, plot: bool = True) -> list[dict]:
    """results.json|csv|md, results_per_task.csv and (with `plot`) success_vs_flops.png and
    success_vs_latency.png in `out`; returns the rows."""
    rows = with_replay_latency(result_rows(records), out)
    (out / "results.json").write_text(json.dumps(rows, indent=2))
    with (out / "results.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows({**r, "run_dirs": ";".join(r["run_dirs"])} for r in rows)
    with (out / "results_per_task.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=TASK_COLUMNS)
        writer.writeheader()
        writer.writerows({"cell": r["cell"], "task": t, **s} for r in rows for t, s in r["per_task"].items())
    table = markdown_table(rows)
    (out / "results.md").write_text(table)
    written = [out / "results.csv", out / "results_per_task.csv", out / "results.md"]
    if plot:
        from .plot import success_plot

        for x_key, name, label in (("flop_ratio", "success_vs_flops", "FLOP ratio (pruned / full)"),
                                   ("latency_ms_p50", "success_vs_latency", "p50 latency per policy call (ms)")):  # fmt: skip
            written.append(success_plot(rows, out / f"{name}.png", x_key=x_key, x_label=label))
    print(table)
    print(f"sweep: {len(rows)} cells -> {', '.join(str(p) for p in written)}", flush=True)
    return rows


def markdown_table(rows: list[dict]) -> str:
    """The overall table (with the replay's time and total FLOP ratios where `latency.json` has them); with
    more than one task, a per-task success table follows."""
    replayed = any(r.get("latency_source") == REPLAY_LATENCY for r in rows)
    header = ["cell", "success % [95% CI]", "n", "sum reward", "FLOP ratio", "p50 / p95 ms"]
    header += ["time ratio", "total FLOP ratio"] if replayed else []
    header += ["kept visual", "vs none: b / c, p"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        paired = (
            "-" if r["vs_none_p"] is None else f"{r['vs_none_b']} / {r['vs_none_c']}, {r['vs_none_p']:.3g}"
        )
        ratios = f" {_ratio(r.get('time_ratio'))} | {_ratio(r.get('total_flop_ratio'))} |" if replayed else ""
        lines.append(
            f"| {r['cell']} | {_pc(r)} | {r['n_episodes']} | {r['avg_sum_reward']:.3f} | {r['flop_ratio']:.2f} | "
            f"{r['latency_ms_p50']:.1f} / {r['latency_ms_p95']:.1f} |{ratios} {r['mean_kept_visual']:.0f} | {paired} |"
        )
    tasks = sorted({t for r in rows for t in r["per_task"]})
    if len(tasks) > 1:
        lines += ["", "| cell | " + " | ".join(tasks) + " |", "|" + "---|" * (len(tasks) + 1)]
        for r in rows:
            cells = [_pc(r["per_task"][t]) if t in r["per_task"] else "-" for t in tasks]
            lines.append(f"| {r['cell']} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("b: episodes `none` solved and the cell failed; c: the reverse; p: exact two-sided McNemar. "
                 "FLOP ratio: VLM + expert, over the cell's episodes.")  # fmt: skip
    sources = {r.get("latency_source", "episodes") for r in rows}
    if replayed:
        lines.append(f"p50 / p95 ms, time ratio (mean ms over `none`'s) and total FLOP ratio (vision tower + VLM + "
                     f"expert): every cell replayed side by side in one process ({LATENCY_FILE})"
                     + ("; cells without a replay figure: their episodes' calls." if len(sources) > 1 else "."))  # fmt: skip
    else:
        lines.append("p50 / p95 ms: the policy calls of the cell's episodes, measured while they ran.")
    return "\n".join(lines) + "\n"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _pc(stats: dict) -> str:
    return f"{stats['success_pc']:.1f} [{stats['ci95_low_pc']:.1f}, {stats['ci95_high_pc']:.1f}]"


def _outcomes(record: dict) -> dict[tuple[str, int], bool]:
    return {(e["task"], e["seed"]): e["success"] for e in record["episodes"]}


def _task_labels(per_task: list[dict]) -> dict[tuple[str, int], str]:
    """`task_group` alone when the group has one task (MetaWorld's `--env.task=a,b`), else `group/id`."""
    ids: dict[str, set] = {}
    for task in per_task:
        ids.setdefault(task["task_group"], set()).add(task["task_id"])
    return {(t["task_group"], t["task_id"]): t["task_group"] if len(ids[t["task_group"]]) == 1
            else f"{t['task_group']}/{t['task_id']}" for t in per_task}  # fmt: skip
