"""Plots drawn with matplotlib (Agg, PNG): the bench's labelled latency scatter and the sweep's success curves."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..registry import is_reference

DPI = 100


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    label: str
    group: str  # points of one group share a colour (e.g. the strategy)
    hollow: bool = False  # a reference point (e.g. an ideal) drawn as an open marker with a thin line


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)  # no bbox_inches="tight": the PNG keeps the requested pixel size
    _pyplot().close(fig)
    return path


def scatter(points: list[Point], path: str | Path, *, x_label: str, y_label: str, title: str,
            y_range: tuple[float, float] | None = None, size: tuple[int, int] = (900, 600),
            connect: bool = False) -> Path:  # fmt: skip
    """Writes a `size`-pixel PNG with one labelled marker per point and a legend of the groups.

    Labels are staggered vertically (three rows) so points at similar positions stay readable. With
    `connect`, the points of each group (solid and hollow apart) are joined in order of x.
    """
    if not points:
        raise ValueError(f"No points to plot in {path}.")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(size[0] / DPI, size[1] / DPI), dpi=DPI)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    groups = list(dict.fromkeys(p.group for p in points))
    for g, group in enumerate(groups):
        color = colors[g % len(colors)]
        for hollow in (False, True):
            members = sorted(
                (p for p in points if p.group == group and p.hollow == hollow), key=lambda p: p.x
            )
            if not members:
                continue
            ax.plot([p.x for p in members], [p.y for p in members], color=color,
                    linestyle="-" if connect and len(members) > 1 else "none", linewidth=1 if hollow else 2,
                    marker="o", markersize=7 if hollow else 8, markerfacecolor="white" if hollow else color,
                    markeredgecolor=color if hollow else "black", label=None if hollow else group)  # fmt: skip
    for i, p in enumerate(q for q in points if not q.hollow and q.label):
        ax.annotate(p.label, (p.x, p.y), xytext=(8, 6 + 12 * (i % 3)), textcoords="offset points", fontsize=8,
                    color=colors[groups.index(p.group) % len(colors)])  # fmt: skip
    if y_range is not None:
        ax.set_ylim(*y_range)
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    fig.subplots_adjust(left=0.08, right=0.82, top=0.92, bottom=0.1)
    return _save(fig, path)


def success_plot(rows: list[dict], path: str | Path, *, x_key: str, x_label: str) -> Path:
    """Success % against `x_key` per sweep cell: one line per strategy (and compact) over its settings, 95 %
    Wilson error bars, and the `none` cells as reference points with a dashed line at their success.

    Rows are `sweep_results.result_rows` dicts (`strategy`, `setting`, `compact`, `success_pc`,
    `ci95_low_pc`, `ci95_high_pc` and `x_key`).
    """
    if not rows:
        raise ValueError(f"No rows to plot in {path}.")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 6), dpi=DPI)
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
    return _save(fig, path)
