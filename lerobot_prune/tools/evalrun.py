"""Runs LeRobot's own `lerobot-eval` pipeline in this process and hands back what it measured.

The command line is parsed exactly as `lerobot-eval` parses it (`lerobot.configs.parser.wrap` on
`EvalPipelineConfig`, whose `__post_init__` reads `--policy.path` and its overrides from `sys.argv`), then
`lerobot.scripts.lerobot_eval.eval_main` runs unchanged. The pruned policy it builds is reached through a
call observer (`observe.observe_calls`), which is how the pruning report and overlays are collected.

No `from __future__ import annotations` here: LeRobot's `parser.wrap` reads the parameter annotation of
the wrapped function as a class.
"""

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from lerobot.configs import parser
from lerobot.configs.eval import EvalPipelineConfig

from ..metrics import PruningReport
from ..observe import CallObserver, observe_calls
from ..threads import check_eval_config

logger = logging.getLogger(__name__)


@dataclass
class EvalRun:
    """Attributes:
    output_dir: the eval's output folder (eval_info.json, videos/, pruning_report.json).
    info: eval_info.json as a dict.
    report: the policy's pruning report (also written to output_dir).
    """

    output_dir: Path
    info: dict
    report: PruningReport

    @property
    def overall(self) -> dict:
        return self.info.get("overall", {})

    def video_paths(self) -> list[Path]:
        return sorted(self.output_dir.glob("videos/**/*.mp4"))


def split_args(argv: list[str], own: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """Separates this tool's arguments (`--name=...` or `--name.field=...` for `name` in `own`) from LeRobot's."""

    def is_own(arg: str) -> bool:
        key = arg[2:].split("=", 1)[0] if arg.startswith("--") else ""
        return key in own or key.split(".", 1)[0] in own

    return [a for a in argv if is_own(a)], [a for a in argv if not is_own(a)]


@contextmanager
def lerobot_argv(args: list[str]) -> Iterator[None]:
    """Makes `sys.argv` look like `lerobot-eval <args>` (LeRobot's configs read it while parsing)."""
    saved = sys.argv
    sys.argv = ["lerobot-eval", *args]
    try:
        yield
    finally:
        sys.argv = saved


@parser.wrap()
def _parsed(cfg: EvalPipelineConfig) -> EvalPipelineConfig:
    return cfg


def parse_eval_config(args: list[str]) -> EvalPipelineConfig:
    """`lerobot-eval`'s configuration from its command-line arguments; requires a pruned policy and
    `--env.max_parallel_tasks=1` (threads would share the policy's per-episode state)."""
    with lerobot_argv(args):
        cfg = _parsed()
    if cfg.policy is None or not hasattr(cfg.policy, "pruning"):
        kind = "no policy" if cfg.policy is None else f"policy type {cfg.policy.type!r}"
        raise ValueError(
            f"Got {kind}; these tools evaluate pruned policies (pruned_pi0, ...). Pass --policy.path=<dir> of "
            "a checkpoint written by `lerobot-prune convert`."
        )
    check_eval_config(cfg)
    return cfg


@contextmanager
def without_videos() -> Iterator[None]:
    """LeRobot's `eval_main` renders videos of the first 10 episodes per task (hard-coded in 0.6), a second
    render per env step; within this context its `eval_policy_all` is called with `max_episodes_rendered=0`."""
    from lerobot.scripts import lerobot_eval

    original = lerobot_eval.eval_policy_all

    def no_videos(*args, **kwargs):
        return original(*args, **(kwargs | {"max_episodes_rendered": 0, "videos_dir": None}))

    lerobot_eval.eval_policy_all = no_videos
    try:
        yield
    finally:
        lerobot_eval.eval_policy_all = original


def run_eval(
    args: list[str], cfg: EvalPipelineConfig, *observers: CallObserver, videos: bool = True
) -> EvalRun:
    """Runs `eval_main(cfg)` with `observers` registered; writes the pruning report next to eval_info.json.

    Args:
        args: the arguments `cfg` was parsed from (visible in `sys.argv` while LeRobot runs).
        videos: False skips LeRobot's episode videos (success and rewards do not depend on them).
    """
    from lerobot.scripts.lerobot_eval import eval_main

    seen: list = []

    def remember(policy, batch) -> None:
        if not seen or seen[-1] is not policy:
            seen.append(policy)

    with ExitStack() as stack:
        stack.enter_context(lerobot_argv(args))
        for observer in (remember, *observers):
            stack.enter_context(observe_calls(observer))
        if not videos:
            stack.enter_context(without_videos())
            Path(cfg.output_dir).mkdir(parents=True, exist_ok=True)  # LeRobot makes it while saving videos
        eval_main(cfg)
    output_dir = Path(cfg.output_dir)
    if not seen:
        raise RuntimeError(f"The eval in {output_dir} made no pruned inference call (n_episodes=0?).")
    report = seen[-1].report
    report.write(output_dir)
    return EvalRun(output_dir, json.loads((output_dir / "eval_info.json").read_text()), report)
