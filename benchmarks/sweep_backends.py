"""Wall time of one small `lerobot-prune sweep` with the local backend and with Ray (local cluster), and Ray's
per-task overhead; writes a JSON with the commands, the machine and the numbers.

    python benchmarks/sweep_backends.py --policy_path=<tiny pruned or base checkpoint> --workers=2 \
        --out=benchmarks/results/sweep_backends_cpu.json

Per-task overhead is measured on the same local cluster as the sweep: the round trip of an empty task on
a reused worker, of an empty task in a fresh worker process (`max_calls=1`, as the sweep runs shards), and
of a fresh worker that also imports the plugin and LeRobot's eval (what every shard pays before its eval).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SWEEP = ["--strategies=[fastv,none]", "--keep_ratios=[0.25]", "--shard_episodes=2", "--torch_threads=1",
         "--env.type=pusht", "--eval.use_async_envs=false", "--policy.device=cpu", "--env.episode_length=10",
         "--eval.n_episodes=4", "--eval.batch_size=1", "--seed=100"]  # fmt: skip


def _noop() -> float:
    return time.time()


def _import_eval() -> float:
    import lerobot.scripts.lerobot_eval  # noqa: F401

    import lerobot_policy_prune  # noqa: F401

    return time.time()


def ray_overhead(workers: int, repeats: int) -> dict:
    import ray

    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    try:
        reused = ray.remote(num_cpus=1)(_noop)
        fresh = ray.remote(num_cpus=1, max_calls=1)(_noop)
        importing = ray.remote(num_cpus=1, max_calls=1)(_import_eval)
        ray.get(reused.remote())  # start one worker
        out = {}
        for name, task, n in (("noop_reused_worker_s", reused, repeats), ("noop_fresh_worker_s", fresh, repeats),
                              ("import_eval_fresh_worker_s", importing, max(2, repeats // 5))):  # fmt: skip
            times = []
            for _ in range(n):
                start = time.perf_counter()
                ray.get(task.remote())
                times.append(time.perf_counter() - start)
            out[name] = {"median": statistics.median(times), "min": min(times), "max": max(times), "n": n}
        return out
    finally:
        ray.shutdown()


def timed_sweep(policy_path: str, out: Path, extra: list[str]) -> dict:
    command = [shutil.which("lerobot-prune"), "sweep", f"--policy_path={policy_path}", *SWEEP, f"--out={out}",
               "--plot=false", *extra]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    cells = [json.loads(p.read_text()) for p in sorted((out / "cells").glob("*.json"))]
    shards = [json.loads(p.read_text()) for p in sorted((out / "shards").glob("*/*.json"))]
    return {
        "command": " ".join(["lerobot-prune", *command[1:]]),
        "wall_s": wall,
        "shards": len(shards),
        "sum_of_shard_eval_s": sum(s["wall_s"] for s in shards),
        "episodes": {
            c["cell"]: [[e["seed"], e["success"], e["sum_reward"]] for e in c["episodes"]] for c in cells
        },
    }


def strip_rewards(episodes: dict[str, list]) -> dict[str, list]:
    return {cell: [row[:2] for row in rows] for cell, rows in episodes.items()}


def max_reward_difference(a: dict[str, list], b: dict[str, list]) -> float:
    return max(abs(x[2] - y[2]) for cell in a for x, y in zip(a[cell], b[cell], strict=True))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--policy_path", required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--out", default="benchmarks/results/sweep_backends_cpu.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        local = timed_sweep(args.policy_path, Path(tmp) / "local", [])
        ray_run = timed_sweep(args.policy_path, Path(tmp) / "ray",
                              ["--backend=ray", f"--ray.num_cpus={args.workers}", "--ray.num_cpus_per_task=1"])  # fmt: skip
    overhead = ray_overhead(args.workers, args.repeats)
    result = {
        "benchmark": "lerobot-prune sweep: local vs Ray backend (local cluster), same shards",
        "script": "python benchmarks/sweep_backends.py " + " ".join(sys.argv[1:]),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_avg_1_5_15_at_end": list(os.getloadavg()),
        },  # fmt: skip
        "ray_workers": args.workers,
        "local": local,
        "ray": ray_run,
        # Same seeds and successes; sum rewards equal up to float summation order (1 ulp seen), as in
        # tests/tools/test_sweep.py.
        "identical_successes": strip_rewards(local["episodes"]) == strip_rewards(ray_run["episodes"]),
        "max_reward_difference": max_reward_difference(local["episodes"], ray_run["episodes"]),
        "ray_speedup_over_local": local["wall_s"] / ray_run["wall_s"],
        "ray_per_task_overhead": overhead,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k not in ("local", "ray")}, indent=2))
    print(f"local {local['wall_s']:.1f} s, ray {ray_run['wall_s']:.1f} s -> {args.out}")


if __name__ == "__main__":
    main()
