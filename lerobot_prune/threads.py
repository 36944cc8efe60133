"""Refuses LeRobot's threaded multi-task eval (`--env.max_parallel_tasks > 1`) for pruned policies.

With `max_parallel_tasks > 1`, `lerobot_eval.eval_policy_all` runs each task's episodes on a thread of a
`ThreadPoolExecutor`, all sharing one policy object. A pruned policy keeps per-episode strategy state
(VLA-Pruner's attention history, TIES's anchor frame, ADP's gate, the action queue), so the threads would
silently mix their episodes' states. Every rollout starts with `policy.reset()`, before its first env step:
that is where the pruned policy checks whether it is running inside such a worker thread.
"""

from __future__ import annotations

import sys

EVAL_MODULE = "lerobot.scripts.lerobot_eval"
MESSAGE = (
    "{what} runs LeRobot's eval tasks on threads that share one policy, and a pruned policy keeps "
    "per-episode strategy state that those threads would mix. Use --env.max_parallel_tasks=1, or evaluate in "
    "parallel processes, each with its own policy: lerobot-prune sweep --backend=ray (see the README)."
)


def in_threaded_eval_task() -> bool:
    """Whether the calling thread is a worker thread of LeRobot's `eval_policy_all(max_parallel_tasks > 1)`."""
    in_task = in_pool = False
    frame = sys._getframe(1)
    while frame is not None:
        module, name = frame.f_globals.get("__name__"), frame.f_code.co_name
        in_task |= module == EVAL_MODULE and name == "run_one"
        in_pool |= module == "concurrent.futures.thread" and name == "_worker"
        frame = frame.f_back
    return in_task and in_pool


def check_not_threaded_eval() -> None:
    """Raises `RuntimeError` inside a threaded LeRobot eval task (see the module docstring)."""
    if in_threaded_eval_task():
        raise RuntimeError(MESSAGE.format(what="--env.max_parallel_tasks > 1"))


def check_eval_config(cfg) -> None:
    """Raises `ValueError` for an eval config that would run tasks on threads (before anything is built)."""
    parallel = getattr(cfg.env, "max_parallel_tasks", 1) if cfg.env is not None else 1
    if parallel > 1:
        raise ValueError(MESSAGE.format(what=f"--env.max_parallel_tasks={parallel}"))
