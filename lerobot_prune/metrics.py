"""Per-call accounting: kept visual tokens per camera, per-layer lengths, FLOPs, latency (methods_spec §10.10).

FLOPs are this project's own per-layer count (`layer_flops`), not a formula from a paper: the usual
"2 FLOPs per multiply-add of every matmul" convention applied to the layer's actual shapes (separate query
and key lengths, Gemma's grouped/multi-query K/V heads, a three-matrix gated MLP). The vision encoder is
left out (pruning does not change it).
"""

from __future__ import annotations

import json
import logging
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from torch import Tensor

logger = logging.getLogger(__name__)
REPORT_FILENAME = "pruning_report.json"


@dataclass(frozen=True)
class LayerDims:
    width: int
    mlp_dim: int
    num_heads: int
    num_kv_heads: int
    head_dim: int

    @classmethod
    def from_hf(cls, config) -> LayerDims:
        return cls(config.hidden_size, config.intermediate_size, config.num_attention_heads,
                   config.num_key_value_heads, config.head_dim)  # fmt: skip


def layer_flops(d: LayerDims, num_queries: int, num_keys: int) -> int:
    """Estimated FLOPs of one decoder layer for `num_queries` new tokens attending to `num_keys` keys.

    With S_q = num_queries, S_k = num_keys, D = width, M = mlp_dim, H / H_kv = query / key-value heads
    and d_h = head_dim, counting 2 FLOPs per multiply-add of each matmul:

        F = 4·S_q·D·H·d_h          (Q and O projections)
          + 4·S_q·D·H_kv·d_h       (K and V projections; Gemma: H_kv = 1)
          + 4·S_q·S_k·H·d_h        (scores Q·Kᵀ and the attention-weighted sum of V)
          + 6·S_q·D·M              (gated MLP: gate, up and down projections)

    Norms, rotary embeddings, softmax, embeddings and the LM head are not counted. This is our own model,
    built from the matmul-counting convention of Kaplan et al. 2020 ("Scaling Laws for Neural Language
    Models", §2.1) on Gemma's layer structure. ADP's Eq. 19, F(S) ≈ 2S²D + 4SD² + 6SDM, has the same
    three parts (for S_q = S_k = S and H·d_h = H_kv·d_h = D) but weighs them differently (one FLOP per
    multiply-add for attention and projections, two for the MLP), so these figures are not Eq. 19's.
    """
    q_and_o = 2 * 2 * num_queries * d.width * d.num_heads * d.head_dim
    k_and_v = 2 * 2 * num_queries * d.width * d.num_kv_heads * d.head_dim
    scores_and_mix = 2 * 2 * num_queries * num_keys * d.num_heads * d.head_dim
    gated_mlp = 2 * 3 * num_queries * d.width * d.mlp_dim
    return q_and_o + k_and_v + scores_and_mix + gated_mlp


def vit_flops(width: int, mlp_dim: int, depth: int, num_patches: int, patch_size: int) -> int:
    """FLOPs (x2 multiply-adds) of a ViT vision tower on one image: patch embedding, then `depth` layers
    of full self-attention (Q/K/V/O projections, scores and mix) and a two-matrix MLP."""
    embed = 2 * num_patches * 3 * patch_size**2 * width
    attention = 2 * 4 * num_patches * width * width + 2 * 2 * num_patches * num_patches * width
    mlp = 2 * 2 * num_patches * width * mlp_dim
    return embed + depth * (attention + mlp)


def kv_cache_bytes(vlm: LayerDims, prefix_lengths: list[int], bytes_per_value: int) -> int:
    """Bytes of the prefix keys and values one sample keeps for the denoising loop."""
    return sum(2 * n * vlm.num_kv_heads * vlm.head_dim * bytes_per_value for n in prefix_lengths)


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
class PruningReport:
    """Accumulates call records; `policy.reset()` closes an episode group (one batch of episodes)."""

    strategy: str
    settings: dict
    camera_names: list[str]
    calls: list[dict] = field(default_factory=list)
    episode_group: int = 0

    def add_call(self, trace: CallTrace, latency_s: float, vlm: LayerDims, expert: LayerDims) -> dict:
        prefix, denoise = trace.flops(vlm, expert)
        full_prefix, full_denoise = trace.flops(vlm, expert, [trace.full_length] * len(trace.prefix_lengths))
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
        }
        self.calls.append(record)
        return record

    def end_episode(self) -> None:
        if self.calls and self.calls[-1]["episode_group"] == self.episode_group:
            self.episode_group += 1

    def episodes(self) -> list[dict]:
        """One entry per episode: calls of its group, mean kept tokens per camera for its batch row."""
        out = []
        groups = sorted({c["episode_group"] for c in self.calls})
        for group in groups:
            calls = [c for c in self.calls if c["episode_group"] == group]
            for row in range(len(calls[0]["kept_visual_per_camera"])):
                kept = [c["kept_visual_per_camera"][row] for c in calls]
                out.append({
                    "episode": len(out),
                    "calls": len(calls),
                    "mean_kept_visual_per_camera": dict(zip(self.camera_names, _column_means(kept), strict=True)),
                    "mean_latency_ms": statistics.fmean(c["latency_ms"] for c in calls),
                    "fallback_calls": sum(c["fallback"] for c in calls),
                })  # fmt: skip
        return out

    def summary(self) -> dict:
        if not self.calls:
            return {"strategy": self.strategy, "calls": 0}
        timed = [c["latency_ms"] for c in self.calls[1:]] or [self.calls[0]["latency_ms"]]
        kept = [row for c in self.calls for row in c["kept_visual_per_camera"]]
        valid = [row for c in self.calls for row in c["valid_visual_per_camera"]]
        return {
            "strategy": self.strategy,
            "settings": self.settings,
            "calls": len(self.calls),
            "latency_ms_median": statistics.median(timed),
            "latency_ms_p95": _percentile(timed, 95),
            "latency_note": "first call excluded (warm-up)" if len(self.calls) > 1 else "single call",
            "mean_kept_visual_per_camera": dict(zip(self.camera_names, _column_means(kept), strict=True)),
            "mean_valid_visual_per_camera": dict(zip(self.camera_names, _column_means(valid), strict=True)),
            "mean_kept_visual": statistics.fmean(sum(r) for r in kept),
            "prefix_gflops": statistics.fmean(c["prefix_gflops"] for c in self.calls),
            "denoise_gflops": statistics.fmean(c["denoise_gflops"] for c in self.calls),
            "flop_ratio": statistics.fmean(c["flop_ratio"] for c in self.calls),
            "fallback_calls": sum(c["fallback"] for c in self.calls),
            "diagnostics_mean": _diagnostic_means(c["diagnostics"] for c in self.calls),
        }

    def to_dict(self) -> dict:
        return {"summary": self.summary(), "episodes": self.episodes(), "calls": self.calls}

    def write(self, directory: str | Path) -> Path:
        path = Path(directory) / REPORT_FILENAME
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path

    def table(self) -> str:
        return format_table([self.summary()])


def format_table(summaries: list[dict], extra: dict[str, list] | None = None) -> str:
    """A short fixed-width table of report summaries (one row per strategy run)."""
    header = [
        "strategy",
        "kept visual",
        "prefix GFLOPs",
        "denoise GFLOPs",
        "FLOP ratio",
        "latency ms (p50/p95)",
    ]
    rows = []
    for s in summaries:
        if not s.get("calls"):
            rows.append([s["strategy"], "-", "-", "-", "-", "-"])
            continue
        rows.append([
            s["strategy"] + _settings_suffix(s.get("settings", {})),
            f"{s['mean_kept_visual']:.0f}",
            f"{s['prefix_gflops']:.3f}",
            f"{s['denoise_gflops']:.3f}",
            f"{s['flop_ratio']:.2f}",
            f"{s['latency_ms_median']:.1f} / {s['latency_ms_p95']:.1f}",
        ])  # fmt: skip
    for name, values in (extra or {}).items():
        header.append(name)
        for row, value in zip(rows, values, strict=True):
            row.append(str(value))
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    lines = [
        "  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)) for line in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _settings_suffix(settings: dict) -> str:
    return f" (keep {settings['keep_ratio']})" if "keep_ratio" in settings else ""


def _diagnostic_means(per_call) -> dict[str, float]:
    """Mean of each numeric diagnostic over calls and batch rows (booleans count as 0/1)."""
    values: dict[str, list[float]] = {}
    for diagnostics in per_call:
        for name, value in diagnostics.items():
            flat = value if isinstance(value, list) else [value]
            values.setdefault(name, []).extend(
                float(v) for v in flat if isinstance(v, int | float) and v is not None
            )
    return {name: statistics.fmean(v) for name, v in values.items() if v}


def _column_means(rows: list[list[int]]) -> list[float]:
    return [statistics.fmean(col) for col in zip(*rows, strict=True)]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]
