"""Where a sweep's shards run: `local` (one after another in this process) or `ray` (one Ray task each).

A shard is LeRobot's `eval_main` on one cell's checkpoint for a range of consecutive seeds. Both backends run
the same `run_shard(spec)`, which builds its own policy and envs, so a shard's per-episode results do not
depend on the backend. Ray tasks run with `max_calls=1`: each shard gets a fresh worker process (no policy,
env or RNG state carried between shards) that declares `--ray.num_cpus_per_task` CPUs. Ray needs the
plugin installed on every node and `<out>` (checkpoints, runs) on a filesystem every node sees.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

logger = logging.getLogger(__name__)
BACKENDS = ("local", "ray")
# Environment the Ray workers of a local cluster get from the driver (a joined cluster's nodes keep theirs).
START_ATTEMPTS = 3
PASSED_ENV = ("PYTHONPATH", "HF_HUB_OFFLINE", "HF_HOME", "HF_LEROBOT_HOME", "WANDB_MODE", "MUJOCO_GL")


@dataclass
class RayArgs:
    """Args:
    address: Cluster to join ("auto": the one this node belongs to, or "<host>:<port>"); unset: start a
        local cluster for this sweep.
    num_cpus: CPUs of the local cluster started when `address` is unset (default: all of this machine's).
    num_cpus_per_task: CPUs each shard declares (and the torch threads Ray gives its worker).
    """

    address: str | None = None
    num_cpus: int | None = None
    num_cpus_per_task: float = 1.0


@dataclass(frozen=True)
class Shard:
    cell: str
    seed: int  # the first env seed; episode i of the shard uses seed + i
    n_episodes: int
    batch_size: int

    @property
    def label(self) -> str:
        return f"seeds{self.seed}-{self.seed + self.n_episodes - 1}"


def run_shard(spec: dict) -> dict:
    """LeRobot's eval of one shard in this process; the shard record (see `sweep_results.shard_record`).

    `spec["torch_threads"]` (when set) fixes torch's CPU threads for the shard: float reductions, and so
    rewards in their last digits, depend on it, so equal thread counts give bit-identical episodes.
    """
    import lerobot_policy_prune  # noqa: F401  (registers the pruned policy types in a fresh worker)

    from .evalrun import parse_eval_config, run_eval
    from .sweep_results import shard_record

    args = [f"--policy.path={spec['ckpt']}", f"--output_dir={spec['run_dir']}", *spec["eval_args"],
            f"--seed={spec['seed']}", f"--eval.n_episodes={spec['n_episodes']}",
            f"--eval.batch_size={spec['batch_size']}"]  # fmt: skip
    import torch

    threads = torch.get_num_threads()
    if spec.get("torch_threads"):
        torch.set_num_threads(spec["torch_threads"])
    try:
        start = time.perf_counter()
        run = run_eval(args, parse_eval_config(args), videos=spec.get("videos", True))
        return shard_record(spec, run.info, run.report, time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)


def run_shards(
    specs: list[dict], backend: str, ray_args: RayArgs, on_done: Callable[[dict, dict], None]
) -> None:
    """Runs every shard spec and calls `on_done(spec, record)` as each finishes (in this process)."""
    if not specs:
        return
    if backend == "local":
        for spec in specs:
            on_done(spec, run_shard(spec))
    elif backend == "ray":
        _run_ray(specs, ray_args, on_done)
    else:
        raise ValueError(f"Unknown sweep backend {backend!r}; choose one of {BACKENDS}.")


def init_ray(ray_args: RayArgs):
    """Joins `ray_args.address`, or starts a local cluster; returns the `ray` module."""
    try:
        import ray
    except ImportError:
        raise ValueError(
            "--backend=ray needs Ray: pip install 'lerobot_policy_prune[ray]' (or --backend=local)."
        ) from None
    if ray_args.num_cpus_per_task <= 0:
        raise ValueError(f"--ray.num_cpus_per_task={ray_args.num_cpus_per_task} must be > 0.")
    if not ray.is_initialized():
        env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
        local = {} if ray_args.address else {"num_cpus": ray_args.num_cpus, "include_dashboard": False}
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                ray.init(address=ray_args.address, runtime_env={"env_vars": env} if env else None,
                         log_to_driver=False, **local)  # fmt: skip
                break
            except Exception as err:  # Ray gives a local node 30 s to start; a loaded machine may need more
                if "timed out during startup" not in str(err) or attempt == START_ATTEMPTS:
                    raise
                logger.warning(
                    "sweep: Ray node start timed out (attempt %d/%d), retrying", attempt, START_ATTEMPTS
                )
                ray.shutdown()
    return ray


def _run_ray(specs: list[dict], ray_args: RayArgs, on_done: Callable[[dict, dict], None]) -> None:
    ray = init_ray(ray_args)
    cluster_cpus = ray.cluster_resources().get("CPU", 0)
    if ray_args.num_cpus_per_task > cluster_cpus:
        raise ValueError(
            f"--ray.num_cpus_per_task={ray_args.num_cpus_per_task} exceeds the cluster's {cluster_cpus:g} CPUs; "
            "no shard could ever be scheduled."
        )
    task = ray.remote(num_cpus=ray_args.num_cpus_per_task, max_calls=1, max_retries=0)(run_shard)
    pending = {task.remote(spec): spec for spec in specs}
    logger.info("sweep: %d shards submitted to Ray (%g CPUs, %g per shard)", len(specs), cluster_cpus,
                ray_args.num_cpus_per_task)  # fmt: skip
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                on_done(pending.pop(ref), ray.get(ref))
    finally:
        for ref in pending:  # an error or an interrupt: finished shards are saved, the rest is cancelled
            ray.cancel(ref, force=True)
        if not ray_args.address:
            ray.shutdown()
