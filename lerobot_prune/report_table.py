"""The fixed-width table of pruning-report summaries that LeRobot commands log and `lerobot-prune report`
prints."""

from __future__ import annotations


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
