"""The report's plots: detection and accuracy against copies and step, power curves, forgetting."""
from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from launch.rates import Rate  # noqa: E402

P_DETECTORS_EXCLUDE = {"accuracy"}  # accuracy is reported as accuracy, not as a test


def _log10p(r: dict[str, Any]) -> float:
    if r.get("log10_p") is not None:
        return float(r["log10_p"])
    return math.log10(max(float(r["p"]), 1e-300))


def _xcount(c: int) -> float:
    return c if c > 0 else 0.5  # controls drawn left of 1 on the log axis


def _copies_axis(ax, counts) -> None:
    """Log-2 x axis labelled with the actual counts; controls (0) drawn at 0.5."""
    counts = sorted(set(counts))
    ax.set_xscale("log", base=2)
    ax.set_xticks([_xcount(c) for c in counts])
    ax.set_xticklabels(["control" if c == 0 else str(c) for c in counts])
    ax.minorticks_off()
    ax.set_xlabel("copies in the training stream")


def _mean_line(ax, pts: list[tuple[int, float]], label: str, **kw) -> None:
    """Every partition as a point, the line through the mean per count (several
    partitions can share a count: controls x0, x0_1)."""
    by: dict[int, list[float]] = defaultdict(list)
    for c, y in pts:
        by[c].append(y)
    xs = sorted(by)
    line, = ax.plot([_xcount(c) for c in xs], [sum(by[c]) / len(by[c]) for c in xs], label=label, **kw)
    ax.scatter([_xcount(c) for c, _ in pts], [y for _, y in pts], color=line.get_color(), s=14, alpha=0.7)


def detection_vs_copies(rows: list[dict[str, Any]], alpha: float, path: Path, title: str) -> Path:
    """log10 p against copies, one line per (benchmark, detector); the alpha line drawn."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    series: dict[tuple[str, str], list[tuple[int, float]]] = defaultdict(list)
    for r in rows:
        if r["detector"] not in P_DETECTORS_EXCLUDE and r.get("p") is not None:
            series[(r["benchmark"], r["detector"])].append((r["count"], _log10p(r)))
    for (bench, det), pts in sorted(series.items()):
        _mean_line(ax, pts, f"{det} ({bench})", alpha=0.8)
    ax.axhline(math.log10(alpha), color="red", linestyle="--", linewidth=1, label=f"p = {alpha}")
    _copies_axis(ax, [c for pts in series.values() for c, _ in pts])
    ax.set_ylabel("log10 p  (lower = stronger evidence)")
    ax.set_title(title)
    ax.legend(fontsize=7)
    return _save(fig, path)


def accuracy_vs_copies(rows: list[dict[str, Any]], path: Path, title: str) -> Path:
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for r in rows:
        if r["detector"] == "accuracy":
            series[r["benchmark"]].append((r["count"], float(r.get("accuracy", r["statistic"]))))
    for bench, pts in sorted(series.items()):
        _mean_line(ax, pts, bench, marker="o")
    _copies_axis(ax, [c for pts in series.values() for c, _ in pts])
    ax.set_ylabel("zero-shot accuracy")
    ax.set_title(title)
    if series:
        ax.legend(fontsize=7)
    return _save(fig, path)


def detection_vs_step(rows: list[dict[str, Any]], detector: str, alpha: float, path: Path, title: str) -> Path:
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    series: dict[tuple[str, str, int], list[tuple[int, float]]] = defaultdict(list)
    for r in rows:
        if r["detector"] == detector and r.get("p") is not None:
            series[(r["benchmark"], r["partition"], r["count"])].append((r["step"], _log10p(r)))
    for (bench, part, count), pts in sorted(series.items(), key=lambda kv: (kv[0][0], kv[0][2])):
        pts.sort()
        ax.plot([s for s, _ in pts], [y for _, y in pts], marker=".", label=f"{bench}/{part} ({count} copies)")
    ax.axhline(math.log10(alpha), color="red", linestyle="--", linewidth=1)
    ax.set_xlabel("training step")
    ax.set_ylabel(f"log10 p ({detector})")
    ax.set_title(title)
    ax.legend(fontsize=6)
    return _save(fig, path)


def draw_power_curve(ax, curves: dict[str, dict[int, Rate]], alpha: float):
    """Detection rate against copies, one line per detector with its Wilson band; the
    controls' false-positive rate (count 0) as a point with its interval, and alpha."""
    for i, (det, by_count) in enumerate(sorted(curves.items())):
        dodge = 2 ** (0.04 * (i - (len(curves) - 1) / 2))  # detectors with equal rates stay visible
        counts = sorted(c for c in by_count if c > 0 and by_count[c].n)
        line, = ax.plot([c * dodge for c in counts], [by_count[c].rate for c in counts], marker="o", label=det)
        ax.fill_between([c * dodge for c in counts], [by_count[c].low for c in counts],
                        [by_count[c].high for c in counts], color=line.get_color(), alpha=0.15)
        ctrl = by_count.get(0)
        if ctrl is not None and ctrl.n:
            ax.errorbar([_xcount(0) * dodge], [ctrl.rate], yerr=[[ctrl.rate - ctrl.low], [ctrl.high - ctrl.rate]],
                        color=line.get_color(), marker="s", capsize=3, linestyle="none")
    ax.axhline(alpha, color="red", linestyle=":", linewidth=1, label=f"nominal FPR = {alpha}")
    _copies_axis(ax, [c for by_count in curves.values() for c in by_count])
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel(f"share of partitions with p < {alpha}")
    ax.legend(fontsize=7)
    return ax


def power_curve(curves: dict[str, dict[int, Rate]], alpha: float, path: Path, title: str) -> Path:
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    draw_power_curve(ax, curves, alpha)
    ax.set_title(title)
    return _save(fig, path)


def draw_forgetting(axes, series: dict[str, list[tuple[int, float]]], alpha: float):
    """log10 p (left) and accuracy (right) against steps since a partition's last exposure.

    ``series``: label -> (steps since exposure, value); labels starting with
    ``accuracy`` go right. Steps are offset by one on the log axis (0 = just after).
    """
    p_ax, acc_ax = axes
    # one colour per detector (left) or per count (right), one legend entry each: a line per
    # partition and detector would make a legend taller than the plot
    colours: dict[str, Any] = {}
    for label, pts in sorted(series.items()):
        pts = sorted(pts)
        detector, count = label.split(" ", 1)[0], label.rsplit("(", 1)[-1].rstrip(")")
        ax, key = (acc_ax, count) if detector == "accuracy" else (p_ax, detector)
        first = key not in colours
        colours.setdefault(key, f"C{len(colours) % 10}")
        ax.plot([s + 1 for s, _ in pts], [y for _, y in pts], marker=".", color=colours[key], alpha=0.7,
                label=key if first else None)
    p_ax.axhline(math.log10(alpha), color="red", linestyle="--", linewidth=1)
    p_ax.set_ylabel("log10 p")
    acc_ax.set_ylabel("zero-shot accuracy")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("steps since the last exposure + 1")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6)
    return axes


def forgetting(series: dict[str, list[tuple[int, float]]], alpha: float, path: Path, title: str) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    draw_forgetting(axes, series, alpha)
    fig.suptitle(title)
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.tight_layout()
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path
