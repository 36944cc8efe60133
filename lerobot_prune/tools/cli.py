"""`lerobot-prune`: list | init-tiny | convert | calibrate | bench | report | eval | visualize | sweep | serve |
record-expert.

Arguments use LeRobot's draccus syntax, e.g.
`lerobot-prune convert --base=lerobot/pi0_libero_finetuned --out=outputs/pi0_fastv25 --pruning.type=fastv --pruning.keep_ratio=0.25`.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path

import draccus

from ..config import PruningConfig
from ..registry import list_strategies
from ..strategies.none import NoPruningConfig


@dataclass
class InitTinyArgs:
    out: str  # folder of the tiny random checkpoint (type `pi0`, `pi05` or `smolvla`, not yet pruned)
    policy_type: str = "pi0"  # pi0 | pi05 | smolvla
    empty_cameras: int = 0  # padded cameras added to PushT's one camera (shows `compact`)
    chunk_size: int = 10
    n_action_steps: int = 10
    seed: int = 0
    env_type: str = "pusht"  # LeRobot sim whose features and stats the checkpoint gets: pusht|aloha|metaworld
    # sizes replacing the tiny ones (keys of families.paligemma.arch.ARCH_KEYS, or of families.smolvlm.tiny's
    # for smolvla), e.g. '{width: 128}'
    arch: dict[str, int] = field(default_factory=dict)


@dataclass
class ConvertArgs:
    base: str  # π0 / π0.5 checkpoint folder or Hub id (e.g. lerobot/pi0_libero_finetuned)
    out: str  # folder of the pruned checkpoint (type pruned_<base type>)
    pruning: PruningConfig = field(default_factory=NoPruningConfig)
    tokenizer: str | None = None  # local tokenizer folder, copied into the checkpoint (π0/π0.5)
    overwrite: bool = False  # replace an existing --out checkpoint folder
    link_weights: bool = False  # hard-link model.safetensors to the base's (shared file) instead of copying


@dataclass
class ReportArgs:
    runs: list[str] = field(default_factory=list)  # lerobot-eval output folders to compare


def cmd_list(argv: list[str]) -> None:
    for name, config_cls in list_strategies().items():
        print(f"{name}: {config_cls.summary}")
        defaults = config_cls()
        for f in fields(config_cls):
            print(f"    --policy.pruning.{f.name}={getattr(defaults, f.name)!r}")


def cmd_init_tiny(argv: list[str]) -> None:
    from ..config import check_empty_cameras
    from ..families.tiny import init_tiny

    args = draccus.parse(InitTinyArgs, args=argv)
    check_empty_cameras(args.empty_cameras)
    out = init_tiny(args.out, policy_type=args.policy_type, env_type=args.env_type,
                    empty_cameras=args.empty_cameras, chunk_size=args.chunk_size,
                    n_action_steps=args.n_action_steps, seed=args.seed, arch=args.arch or None)  # fmt: skip
    print(f"tiny {args.policy_type} checkpoint ({args.env_type}): {out}")


def cmd_convert(argv: list[str]) -> None:
    from .convert import convert

    args = draccus.parse(ConvertArgs, args=argv)
    out = convert(args.base, args.out, args.pruning, tokenizer=args.tokenizer, overwrite=args.overwrite,
                  link_weights=args.link_weights)  # fmt: skip
    print(f"pruned checkpoint ({args.pruning.type}): {out}")


def cmd_calibrate(argv: list[str]) -> None:
    """Computes TIES's τ statistics for a checkpoint and saves them next to it."""
    from .calibrate import CalibrateArgs, calibrate

    calibrate(draccus.parse(CalibrateArgs, args=argv))


def cmd_bench(argv: list[str]) -> None:
    from .bench import BenchArgs, command_line, run_bench

    run_bench(draccus.parse(BenchArgs, args=argv), command=command_line(argv))


def cmd_serve(argv: list[str]) -> None:
    """LeRobot's async policy server (`python -m lerobot.async_inference.policy_server`) with pruned_* types."""
    from .serve import serve

    serve(argv)


def cmd_report(argv: list[str]) -> None:
    """Prints one row per eval run: kept tokens, FLOPs, latency and success."""
    from ..metrics import REPORT_FILENAME
    from ..report_table import format_table

    args = draccus.parse(ReportArgs, args=argv)
    summaries, success = [], []
    for run in map(Path, args.runs):
        report, info = run / REPORT_FILENAME, run / "eval_info.json"
        if not report.is_file():
            raise FileNotFoundError(
                f"{run} has no {REPORT_FILENAME}; was it a lerobot-eval run of a pruned policy?"
            )
        summaries.append(json.loads(report.read_text())["summary"])
        overall = json.loads(info.read_text()).get("overall", {}) if info.is_file() else {}
        success.append(f"{overall['pc_success']:.1f}" if "pc_success" in overall else "-")
    print(format_table(summaries, extra={"success %": success}))


def cmd_eval(argv: list[str]) -> None:
    """LeRobot's lerobot-eval (same arguments) plus pruning metrics, overlays and videos in W&B."""
    from .evaluate import main as eval_main

    eval_main(argv)


def cmd_visualize(argv: list[str]) -> None:
    """Kept/pruned tokens over camera frames of a dataset episode or a sim rollout (PNG grid + MP4)."""
    from .visualize import VisualizeArgs, visualize

    visualize(draccus.parse(VisualizeArgs, args=argv))


def cmd_record_expert(argv: list[str]) -> None:
    """MetaWorld scripted-expert episodes into a local LeRobotDataset (see `lerobot_prune.tools.record`)."""
    from .record import RecordArgs, record

    print(f"dataset: {record(draccus.parse(RecordArgs, args=argv))}")


def cmd_sweep(argv: list[str]) -> None:
    """Resumable success study: lerobot-eval over strategies x settings (local or Ray shards), stats, plots."""
    from .sweep import main as sweep_main

    sweep_main(argv)


COMMANDS = {"list": cmd_list, "init-tiny": cmd_init_tiny, "convert": cmd_convert, "calibrate": cmd_calibrate,
            "bench": cmd_bench, "report": cmd_report, "eval": cmd_eval, "visualize": cmd_visualize,
            "sweep": cmd_sweep, "serve": cmd_serve, "record-expert": cmd_record_expert}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: lerobot-prune {{{'|'.join(COMMANDS)}}} [--help]", file=sys.stderr)
        sys.exit(2)
    import lerobot_policy_prune  # noqa: F401  (registers the policy types)

    try:
        COMMANDS[argv[0]](argv[1:])
    except USER_ERRORS as err:
        print(f"lerobot-prune {argv[0]}: error: {one_line(err)}", file=sys.stderr)
        sys.exit(1)


def _user_errors() -> tuple[type[BaseException], ...]:
    from safetensors import SafetensorError

    return (ValueError, OSError, TypeError, draccus.utils.ParsingError, SafetensorError)


# Bad arguments or files (json.JSONDecodeError is a ValueError, FileNotFoundError an OSError): one line, exit 1.
USER_ERRORS = _user_errors()
GENERIC = ("Couldn't instantiate class", "Couldn't find a choice class")


def one_line(err: BaseException) -> str:
    """The message of `err` and its chained causes (draccus wraps the real one), on one line.

    Generic wrappers ("Couldn't instantiate class X ...") are left out when a cause says more.
    """
    chain: list[BaseException] = []
    while err is not None and err not in chain:
        chain.append(err)
        err = err.__cause__ or (None if err.__suppress_context__ else err.__context__)
    messages = [str(e).strip() or type(e).__name__ for e in chain]
    specific = [m for m in messages if not m.startswith(GENERIC)] or messages
    unique = [m for i, m in enumerate(specific) if not any(m in other for other in specific[:i])]
    return " ".join(": ".join(unique).split())


if __name__ == "__main__":
    main()
