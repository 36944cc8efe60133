"""Progress bars for the long commands, in LeRobot's style: tqdm on stderr with an ETA, off under slurm."""

from __future__ import annotations

import sys

from lerobot.utils.utils import inside_slurm
from tqdm import tqdm


def progress_bar(total: float, desc: str, unit: str, **kwargs) -> tqdm:
    """A tqdm bar over `total` `unit`s (disabled inside slurm, as `lerobot-train` and `lerobot-eval` do)."""
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True,
                disable=inside_slurm(), **kwargs)  # fmt: skip
