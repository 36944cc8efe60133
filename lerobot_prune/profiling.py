"""Time spent in a strategy's own work (signals and selection), for `lerobot-prune bench`."""

from __future__ import annotations

import time
from contextlib import contextmanager

import torch


class StrategyClock:
    """Accumulates wall time of the sections it wraps; off by default (then it costs nothing).

    When on, each section is CUDA-synchronised on both ends, so it measures the strategy's kernels but
    also adds synchronisations: measure latency with the clock off.
    """

    def __init__(self) -> None:
        self.enabled = False
        self.seconds = 0.0

    @contextmanager
    def section(self, device: torch.device | None = None):
        if not self.enabled:
            yield
            return
        cuda = device is not None and device.type == "cuda"
        if cuda:
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        try:
            yield
        finally:
            if cuda:
                torch.cuda.synchronize(device)
            self.seconds += time.perf_counter() - start
