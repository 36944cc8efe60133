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


class PhaseClock:
    """Splits `sample_actions` wall time into vision encoder, prefix pass and denoising loop.

    While entered, it wraps (on the instance only) the VLM's `embed_image` and the model's per-step
    velocity function (`denoise_step` upstream, `denoise_with_prefix` on the pruned path), each timed with
    a CUDA synchronisation on both ends. The prefix share is the rest of the call: language embedding,
    the prefill and the strategy. The synchronisations add latency: use it on a separate pass.
    """

    def __init__(self, model, vlm_wrapper, device: torch.device) -> None:
        self.targets = [(vlm_wrapper, "embed_image", "vision_ms")] + [
            (model, name, "denoise_ms")
            for name in ("denoise_step", "denoise_with_prefix")
            if hasattr(model, name)
        ]
        self.cuda = device.type == "cuda"
        self.ms = {"vision_ms": 0.0, "denoise_ms": 0.0}

    def _timed(self, fn, key: str):
        def wrapper(*args, **kwargs):
            if self.cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            out = fn(*args, **kwargs)
            if self.cuda:
                torch.cuda.synchronize()
            self.ms[key] += (time.perf_counter() - start) * 1e3
            return out

        return wrapper

    def __enter__(self) -> PhaseClock:
        self.ms = dict.fromkeys(self.ms, 0.0)
        for owner, name, key in self.targets:
            setattr(owner, name, self._timed(getattr(owner, name), key))
        return self

    def __exit__(self, *exc) -> None:
        for owner, name, _ in self.targets:
            delattr(owner, name)
