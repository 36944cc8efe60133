"""Writes each policy's pruning report when a LeRobot command ends, where its caller said.

The folder is `--policy.pruning.report_dir`, else the `--output_dir` on the command line of a LeRobot
command (`lerobot-eval`, `lerobot-rollout`: their eval loops give a policy no handle on their output folder,
so it is read from the arguments the user typed). With neither, the report is only logged. This package's
own tools write the report themselves (`tools.evalrun.run_eval`).
"""

from __future__ import annotations

import atexit
import logging
import sys
from pathlib import Path

from .config import PruningConfig
from .metrics import PruningReport

logger = logging.getLogger(__name__)
_REPORTS: list[tuple[PruningReport, PruningConfig]] = []


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
        directory = config.report_dir or output_dir_from_argv(sys.argv)
        logger.info("Pruning report (%s):\n%s", report.strategy, report.table())
        if directory is None:
            logger.warning("Pruning report not written: pass --output_dir or --policy.pruning.report_dir.")
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
