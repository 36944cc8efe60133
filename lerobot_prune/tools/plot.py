"""Plots: a labelled scatter drawn with Pillow (`bench`; LeRobot depends on Pillow) and the sweep's success
curves drawn with matplotlib (the `plot` extra: pip install 'lerobot_policy_prune[plot]')."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from ..registry import is_reference

COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
          (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]  # fmt: skip


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    label: str
    group: str  # points of one group share a colour (e.g. the strategy)
    hollow: bool = False  # a reference point (e.g. an ideal) drawn as an open marker with a thin line


def scatter(points: list[Point], path: str | Path, *, x_label: str, y_label: str, title: str,
            y_range: tuple[float, float] | None = None, size: tuple[int, int] = (900, 600),
            connect: bool = False) -> Path:  # fmt: skip
    """Writes a PNG with one labelled marker per point, axes with ticks, and a legend of the groups.

    Labels are staggered vertically (three rows) so points at similar positions stay readable. With
    `connect`, the points of each group (solid and hollow apart) are joined in order of x.
    """
    if not points:
        raise ValueError(f"No points to plot in {path}.")
    width, height = size
    left, right, top, bottom = 80, 170, 50, 60
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=13)
    x_ticks = _ticks([p.x for p in points])
    y_ticks = _ticks(list(y_range) if y_range else [p.y for p in points])

    def to_px(x: float, y: float) -> tuple[float, float]:
        fx = (x - x_ticks[0]) / (x_ticks[-1] - x_ticks[0])
        fy = (y - y_ticks[0]) / (y_ticks[-1] - y_ticks[0])
        return left + fx * (width - left - right), height - bottom - fy * (height - top - bottom)

    draw.rectangle([left, top, width - right, height - bottom], outline="black")
    for x in x_ticks:
        px, _ = to_px(x, y_ticks[0])
        draw.line([px, height - bottom, px, height - bottom + 5], fill="black")
        draw.text((px, height - bottom + 8), f"{x:g}", fill="black", font=font, anchor="mt")
    for y in y_ticks:
        _, py = to_px(x_ticks[0], y)
        draw.line([left - 5, py, left, py], fill="black")
        draw.text((left - 8, py), f"{y:g}", fill="black", font=font, anchor="rm")
    draw.text(((left + width - right) / 2, height - 18), x_label, fill="black", font=font, anchor="mm")
    draw.text((10, top - 25), y_label, fill="black", font=font, anchor="lm")
    draw.text(((left + width - right) / 2, 15), title, fill="black", font=font, anchor="mm")
    groups = list(dict.fromkeys(p.group for p in points))
    if connect:
        for group in groups:
            for hollow in (False, True):
                line = sorted((p.x, p.y) for p in points if p.group == group and p.hollow == hollow)
                if len(line) > 1:
                    color = COLORS[groups.index(group) % len(COLORS)]
                    draw.line([to_px(x, y) for x, y in line], fill=color, width=1 if hollow else 2)
    for i, p in enumerate(points):
        color = COLORS[groups.index(p.group) % len(COLORS)]
        px, py = to_px(p.x, p.y)
        if p.hollow:
            draw.ellipse([px - 4, py - 4, px + 4, py + 4], fill="white", outline=color, width=2)
            continue
        draw.ellipse([px - 5, py - 5, px + 5, py + 5], fill=color, outline="black")
        draw.text((px + 8, py - 8 - 14 * (i % 3)), p.label, fill=color, font=font)
    for i, group in enumerate(groups):
        y = top + 10 + 20 * i
        draw.ellipse([width - right + 15, y - 5, width - right + 25, y + 5], fill=COLORS[i % len(COLORS)])
        draw.text((width - right + 32, y), group, fill="black", font=font, anchor="lm")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def _ticks(values: list[float], count: int = 5) -> list[float]:
    """`count + 1` evenly spaced round tick values covering `values` (a unit span when they are equal)."""
    low, high = min(values), max(values)
    if high - low < 1e-9:
        low, high = low - 0.5, high + 0.5
    raw = (high - low) / count
    magnitude = 10 ** _floor_log10(raw)
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = step * (low // step)
    ticks = [start + i * step for i in range(count + 2)]
    while ticks[-2] >= high:
        ticks.pop()
    return [round(t, 10) for t in ticks]


def _floor_log10(x: float) -> int:
    exponent = 0
    while x >= 10:
        x, exponent = x / 10, exponent + 1
    while x < 1:
        x, exponent = x * 10, exponent - 1
    return exponent


def success_plot(rows: list[dict], path: str | Path, *, x_key: str, x_label: str) -> Path:
    """Success % against `x_key` per sweep cell: one line per strategy (and compact) over its settings, 95 %
    Wilson error bars, and the `none` cells as reference points with a dashed line at their success.

    Rows are `sweep_results.result_rows` dicts (`strategy`, `setting`, `compact`, `success_pc`,
    `ci95_low_pc`, `ci95_high_pc` and `x_key`).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not rows:
        raise ValueError(f"No rows to plot in {path}.")
    fig, ax = plt.subplots(figsize=(9, 6), dpi=100)
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row["strategy"] + (" (compact)" if row["compact"] else ""), []).append(row)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (group, members) in enumerate(groups.items()):
        members = sorted(members, key=lambda r: r[x_key])
        x = [r[x_key] for r in members]
        y = [r["success_pc"] for r in members]
        err = [[r["success_pc"] - r["ci95_low_pc"] for r in members],
               [r["ci95_high_pc"] - r["success_pc"] for r in members]]  # fmt: skip
        reference = is_reference(members[0]["strategy"])
        color = "black" if reference else colors[i % len(colors)]
        ax.errorbar(x, y, yerr=err, color=color, marker="*" if reference else "o",
                    markersize=12 if reference else 6, linestyle="none" if reference else "-", capsize=3,
                    label=group + (" (reference)" if reference else ""))  # fmt: skip
        for r in members:
            if reference:
                ax.axhline(r["success_pc"], color=color, linestyle="--", linewidth=0.8)
            elif r["setting"]:
                ax.annotate(r["setting"].split("=", 1)[1], (r[x_key], r["success_pc"]), fontsize=8,
                            xytext=(4, 4), textcoords="offset points", color=color)  # fmt: skip
    ax.set_xlabel(x_label)
    ax.set_ylabel("success (%), 95 % Wilson interval")
    ax.set_ylim(-5, 105)
    ax.set_title(f"Success against {x_label.split(' (')[0]} per sweep cell")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
