"""Per-call accounting and the pruning report: kept visual tokens per camera, per-layer lengths, FLOPs,
latency (methods_spec §10.10).

FLOPs come from the FLOP model in `flops.py`. The vision encoder is counted separately (`encoder_flops`,
from the patches each camera fed each tower layer), since only `pruning.encoder` changes it; `flop_ratio`
stays the VLM + expert ratio and `total_flop_ratio` adds it.
"""

from __future__ import annotations

import json
import logging
import statistics
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from torch import Tensor

from .flops import LayerDims, VisionDims, encoder_flops, layer_flops
from .report_table import format_table

logger = logging.getLogger(__name__)
REPORT_FILENAME = "pruning_report.json"
MAX_CALL_RECORDS = 1000
MAX_EPISODE_RECORDS = 1000
ENCODER_KEYS = ("encoder_gflops", "encoder_flop_ratio", "total_flop_ratio")


@dataclass(frozen=True)
class CallTrace:
    """What one `sample_actions` call computed.

    Attributes:
        kept_per_camera: `[B, C]` visual tokens each sample kept per camera.
        valid_per_camera: `[B, C]` real (non-padded) visual tokens per camera before pruning.
        prefix_lengths: physical prefix length at each VLM layer (= the expert's prefix keys there).
        full_length: prefix length of the unmodified policy.
        suffix_length: expert tokens per denoising step (π0: state + chunk).
        num_steps: denoising steps.
        fallback: the strategy failed and this call ran with full vision.
        extra_prefix_passes: additional prefix passes (a probing strategy's second pass).
        extra_steps: additional denoising steps (a probing strategy re-runs its first step).
        diagnostics: the strategy's per-call diagnostics (`TokenPruner.diagnostics`).
        encoder_patches: `[B, tower depth, C]` patches of each camera that entered each vision-tower layer,
            when `pruning.encoder` (or `pack_cameras` / `vision_dtype`) ran the tower; None: every patch.
    """

    kept_per_camera: Tensor
    valid_per_camera: Tensor
    prefix_lengths: list[int]
    full_length: int
    suffix_length: int
    num_steps: int
    fallback: bool = False
    extra_prefix_passes: int = 0
    extra_steps: int = 0
    diagnostics: dict = field(default_factory=dict)
    encoder_patches: Tensor | None = None

    def flops(self, vlm: LayerDims, expert: LayerDims, lengths: list[int] | None = None) -> tuple[int, int]:
        """(prefix pass, denoising loop) FLOPs per sample of this call; with `lengths`, of one plain call
        over those per-layer prefix lengths (the unpruned reference)."""
        passes, steps = 1 + self.extra_prefix_passes, self.num_steps + self.extra_steps
        if lengths is not None:
            passes, steps = 1, self.num_steps
        lengths = self.prefix_lengths if lengths is None else lengths
        prefix = sum(layer_flops(vlm, n, n) for n in lengths)
        step = sum(layer_flops(expert, self.suffix_length, n + self.suffix_length) for n in lengths)
        return passes * prefix, steps * step


@dataclass
class _Totals:
    """Running sums over calls (or over one episode group's calls): constant size however many calls."""

    calls: int = 0
    rows: int = 0  # batch rows over calls (a call of batch B adds B)
    kept: list[int] = field(default_factory=list)  # per camera, summed over rows
    valid: list[int] = field(default_factory=list)
    kept_visual: int = 0
    prefix_gflops: float = 0.0
    denoise_gflops: float = 0.0
    flop_ratio: float = 0.0
    latency_ms: float = 0.0
    fallbacks: int = 0
    encoder: dict[str, float] = field(default_factory=dict)  # ENCODER_KEYS -> sum over calls
    diagnostics: dict[str, list[float]] = field(default_factory=dict)  # name -> [sum, count]
    kept_per_row: list[list[int]] = field(default_factory=list)  # [row][camera], for episode groups

    def add(self, record: dict) -> None:
        kept, valid = record["kept_visual_per_camera"], record["valid_visual_per_camera"]
        self.calls += 1
        self.rows += len(kept)
        self.kept = _add_columns(self.kept, [sum(col) for col in zip(*kept, strict=True)])
        self.valid = _add_columns(self.valid, [sum(col) for col in zip(*valid, strict=True)])
        self.kept_visual += sum(sum(row) for row in kept)
        self.prefix_gflops += record["prefix_gflops"]
        self.denoise_gflops += record["denoise_gflops"]
        self.flop_ratio += record["flop_ratio"]
        self.latency_ms += record["latency_ms"]
        self.fallbacks += record["fallback"]
        for key in ENCODER_KEYS:
            if key in record:
                self.encoder[key] = self.encoder.get(key, 0.0) + record[key]
        for name, value in record["diagnostics"].items():
            flat = [float(v) for v in (value if isinstance(value, list) else [value])
                    if isinstance(v, int | float) and v is not None]  # fmt: skip
            if flat:
                total = self.diagnostics.setdefault(name, [0.0, 0])
                total[0] += sum(flat)
                total[1] += len(flat)
        if len(self.kept_per_row) != len(kept):
            self.kept_per_row = [[0] * len(kept[0]) for _ in kept]
        self.kept_per_row = [_add_columns(a, b) for a, b in zip(self.kept_per_row, kept, strict=True)]


@dataclass
class PruningReport:
    """Accumulates call records; `policy.reset()` closes an episode group (one batch of episodes).

    Its size is bounded for long deployments: the summary and the per-episode entries come from running
    totals, and only the last `max_call_records` call records and `max_episode_records` episode entries are
    kept (`calls_dropped` / `episodes_dropped` count the rest). Latency percentiles are over the kept calls.
    """

    strategy: str
    settings: dict
    camera_names: list[str]
    max_call_records: int = MAX_CALL_RECORDS
    max_episode_records: int = MAX_EPISODE_RECORDS
    episode_group: int = 0
    calls: deque = field(init=False)
    calls_dropped: int = 0
    episodes_dropped: int = 0

    def __post_init__(self) -> None:
        self.calls = deque(maxlen=self.max_call_records)
        self._totals = _Totals()
        self._group = _Totals()
        self._closed: deque = deque(maxlen=self.max_episode_records)
        self._first_latency_ms: float | None = None

    def add_call(self, trace: CallTrace, latency_s: float, vlm: LayerDims, expert: LayerDims,
                 vision: VisionDims | None = None) -> dict:  # fmt: skip
        prefix, denoise = trace.flops(vlm, expert)
        full_prefix, full_denoise = trace.flops(vlm, expert, [trace.full_length] * len(trace.prefix_lengths))
        encoder = {}
        if vision is not None:
            encoder = encoder_record(trace, vision)
            full = encoder.pop("full_flops")
            total = prefix + denoise + encoder["encoder_gflops"] * 1e9
            encoder["total_flop_ratio"] = total / (full_prefix + full_denoise + full)
        record = {
            "episode_group": self.episode_group,
            "kept_visual_per_camera": trace.kept_per_camera.tolist(),
            "valid_visual_per_camera": trace.valid_per_camera.tolist(),
            "prefix_lengths": list(trace.prefix_lengths),
            "prefix_gflops": prefix / 1e9,
            "denoise_gflops": denoise / 1e9,
            "flop_ratio": (prefix + denoise) / (full_prefix + full_denoise),
            "latency_ms": latency_s * 1e3,
            "fallback": trace.fallback,
            "extra_prefix_passes": trace.extra_prefix_passes,
            "diagnostics": {
                k: v.tolist() if isinstance(v, Tensor) else v for k, v in trace.diagnostics.items()
            },
            **encoder,
        }
        if len(self.calls) == self.calls.maxlen:
            self.calls_dropped += 1
        self.calls.append(record)
        if self._first_latency_ms is None:
            self._first_latency_ms = record["latency_ms"]
        self._totals.add(record)
        self._group.add(record)
        return record

    def end_episode(self) -> None:
        if self._group.calls:
            for entry in self._group_entries():
                if len(self._closed) == self._closed.maxlen:
                    self.episodes_dropped += 1
                self._closed.append(entry)
            self._group = _Totals()
            self.episode_group += 1

    def _group_entries(self) -> list[dict]:
        group = self._group
        return [{
            "episode_group": self.episode_group,
            "calls": group.calls,
            "mean_kept_visual_per_camera": dict(zip(self.camera_names, [k / group.calls for k in row], strict=True)),
            "mean_latency_ms": group.latency_ms / group.calls,
            "fallback_calls": group.fallbacks,
        } for row in group.kept_per_row]  # fmt: skip

    def episodes(self) -> list[dict]:
        """One entry per episode (batch row of an episode group; the open group included): its calls, mean
        kept tokens per camera, mean latency and fallback calls; numbered from the first episode kept."""
        entries = [*self._closed, *(self._group_entries() if self._group.calls else [])]
        return [{"episode": self.episodes_dropped + i, **{k: v for k, v in e.items() if k != "episode_group"}}
                for i, e in enumerate(entries)]  # fmt: skip

    def summary(self) -> dict:
        totals = self._totals
        if not totals.calls:
            return {"strategy": self.strategy, "calls": 0}
        timed = [c["latency_ms"] for c in self.calls]
        if self.calls_dropped == 0 and len(timed) > 1:
            timed = timed[1:]  # the very first call is a warm-up
        return {
            "strategy": self.strategy,
            "settings": self.settings,
            "calls": totals.calls,
            "latency_ms_median": statistics.median(timed),
            "latency_ms_p95": _percentile(timed, 95),
            "latency_note": _latency_note(totals.calls, len(timed), self.calls_dropped),
            "mean_kept_visual_per_camera": dict(
                zip(self.camera_names, [k / totals.rows for k in totals.kept], strict=True)
            ),  # fmt: skip
            "mean_valid_visual_per_camera": dict(
                zip(self.camera_names, [v / totals.rows for v in totals.valid], strict=True)
            ),  # fmt: skip
            "mean_kept_visual": totals.kept_visual / totals.rows,
            "prefix_gflops": totals.prefix_gflops / totals.calls,
            "denoise_gflops": totals.denoise_gflops / totals.calls,
            "flop_ratio": totals.flop_ratio / totals.calls,
            "fallback_calls": totals.fallbacks,
            **{key: total / totals.calls for key, total in totals.encoder.items()},
            "diagnostics_mean": {name: total / count for name, (total, count) in totals.diagnostics.items()},
        }

    def to_dict(self) -> dict:
        return {"summary": self.summary(), "episodes": self.episodes(), "calls": list(self.calls),
                "calls_dropped": self.calls_dropped, "episodes_dropped": self.episodes_dropped}  # fmt: skip

    def write(self, directory: str | Path) -> Path:
        path = Path(directory) / REPORT_FILENAME
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path

    def table(self) -> str:
        return format_table([self.summary()])


def encoder_record(trace: CallTrace, vision: VisionDims) -> dict:
    """The tower part of a call record: mean patches per layer and camera, GFLOPs per sample, ratio."""
    cameras = trace.kept_per_camera.shape[1]
    full = [[vision.patches] * cameras] * vision.depth
    rows = trace.encoder_patches.tolist() if trace.encoder_patches is not None else [full]
    flops = sum(encoder_flops(vision, row) for row in rows) / len(rows)
    full_flops = encoder_flops(vision, full)
    mean = [
        [sum(row[layer][c] for row in rows) / len(rows) for c in range(cameras)]
        for layer in range(vision.depth)
    ]
    return {"encoder_patches_per_camera": mean, "encoder_gflops": flops / 1e9,
            "encoder_flop_ratio": flops / full_flops, "full_flops": full_flops}  # fmt: skip


def _latency_note(calls: int, timed: int, dropped: int) -> str:
    if dropped:
        return f"over the last {timed} calls (older call records dropped)"
    return "first call excluded (warm-up)" if calls > 1 else "single call"


def _add_columns(a: list, b: list) -> list:
    return [x + y for x, y in zip(a, b, strict=True)] if a else list(b)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]
