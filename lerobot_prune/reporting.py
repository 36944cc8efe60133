"""Writes each policy's pruning report when the process ends, next to `lerobot-eval`'s `eval_info.json`.

Only LeRobot commands (or a set `report_dir`) write at exit. LeRobot's eval loop gives a policy no handle
on its output folder, so the folder is, in order:
`--policy.pruning.report_dir`, the `--output_dir` of the command line, or the folder of the newest
`eval_info.json` written under `./outputs` since this process started.
"""

from __future__ import annotations

import atexit
import logging
import sys
import time
from pathlib import Path

from .config import PruningConfig
from .metrics import PruningReport

logger = logging.getLogger(__name__)
_REPORTS: list[tuple[PruningReport, PruningConfig]] = []
_STARTED = time.time()


def register_report(report: PruningReport, config: PruningConfig) -> None:
    if not _REPORTS:
        atexit.register(write_reports)
    _REPORTS.append((report, config))


def write_reports() -> list[Path]:
    written = []
    for report, config in _REPORTS:
        name = Path(sys.argv[0]).name
        from_cli = name.startswith("lerobot") and name != "lerobot-prune"
        if not report.calls or (config.report_dir is None and not from_cli):
            continue
        directory = config.report_dir or output_dir_from_argv(sys.argv) or newest_eval_dir(Path("outputs"))
        logger.info("Pruning report (%s):\n%s", report.strategy, report.table())
        if directory is None:
            logger.warning("No output folder known for the pruning report; set --policy.pruning.report_dir.")
            continue
        written.append(report.write(directory))
        logger.info("Pruning report written to %s", written[-1])
    return written


def output_dir_from_argv(argv: list[str]) -> Path | None:
    for i, arg in enumerate(argv):
        if arg.startswith("--output_dir="):
            return Path(arg.split("=", 1)[1])
        if arg == "--output_dir" and i + 1 < len(argv):
            return Path(argv[i + 1])
    return None


def newest_eval_dir(root: Path) -> Path | None:
    infos = (
        [p for p in root.glob("**/eval_info.json") if p.stat().st_mtime >= _STARTED] if root.is_dir() else []
    )
    return max(infos, key=lambda p: p.stat().st_mtime).parent if infos else None
