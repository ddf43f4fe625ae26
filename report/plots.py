"""The report's plots: detection and accuracy against copies and step, power curves, forgetting."""
from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from audit.results import ResultRow  # noqa: E402
from report.rates import Rate, row_log10_p  # noqa: E402

P_DETECTORS_EXCLUDE = {"accuracy"}  # accuracy is reported as accuracy, not as a test


# tab10 without its red (the alpha line is red); one colour per detector in every plot
PALETTE = ("C0", "C1", "C2", "C4", "C5", "C6", "C7", "C8", "C9", "black", "gold", "teal")
LINE_STYLES = ("-", "--", ":", "-.")  # one per benchmark
MARKERS = ("o", "s", "^", "D")


def detector_colours(detectors) -> dict[str, str]:
    """A colour per detector name, fixed by sorted name (the same detector, the same colour)."""
    return {d: PALETTE[i % len(PALETTE)] for i, d in enumerate(sorted(set(detectors)))}


def benchmark_styles(benchmarks) -> dict[str, tuple[str, str]]:
    """(line style, marker) per benchmark, by sorted name."""
    return {b: (LINE_STYLES[i % len(LINE_STYLES)], MARKERS[i % len(MARKERS)])
            for i, b in enumerate(sorted(set(benchmarks)))}


def _log10p(r: ResultRow) -> float:
    """Of a row with a p (the plots draw no other)."""
    lp = row_log10_p(r)
    assert lp is not None, "a row with a p"
    return lp


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


def _mean_line(ax, pts: list[tuple[int, float]], label: str, marker: str = "o", **kw) -> None:
    """Every partition as a point, the line through the mean per count (several
    partitions can share a count: controls x0, x0_1)."""
    by: dict[int, list[float]] = defaultdict(list)
    for c, y in pts:
        by[c].append(y)
    xs = sorted(by)
    line, = ax.plot([_xcount(c) for c in xs], [sum(by[c]) / len(by[c]) for c in xs], label=label, **kw)
    ax.scatter([_xcount(c) for c, _ in pts], [y for _, y in pts], color=line.get_color(), s=14, alpha=0.7,
               marker=marker)


def detection_vs_copies(rows: list[ResultRow], alpha: float, path: Path, title: str) -> Path:
    """log10 p against copies, one line per (benchmark, detector): colour = detector, line
    style = benchmark; the alpha line drawn."""
    fig, ax = plt.subplots(figsize=(8.0, 4.2))
    series: dict[tuple[str, str], list[tuple[int, float]]] = defaultdict(list)
    for r in rows:
        if r.detector not in P_DETECTORS_EXCLUDE and r.p is not None and r.count is not None:
            series[(r.benchmark, r.detector)].append((r.count, _log10p(r)))
    colours = detector_colours(d for _, d in series)
    styles = benchmark_styles(b for b, _ in series)
    for (bench, det), pts in sorted(series.items()):
        style, marker = styles[bench]
        _mean_line(ax, pts, f"{det} ({bench})", marker=marker, alpha=0.8, color=colours[det], linestyle=style)
    ax.axhline(math.log10(alpha), color="red", linestyle="--", linewidth=1, label=f"p = {alpha}")
    _copies_axis(ax, [c for pts in series.values() for c, _ in pts])
    ax.set_ylabel("log10 p  (lower = stronger evidence)")
    ax.set_title(title)
    _key_legend(ax, colours, styles, alpha)
    return _save(fig, path)


def _key_legend(ax, colours: dict[str, str], styles: dict[str, tuple[str, str]], alpha: float | None = None,
                colour_title: str = "detector") -> None:
    """One legend entry per colour (detector or count) and per line style (benchmark), not per pair."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=c, linewidth=2, label=f"{k}") for k, c in colours.items()]
    if len(styles) > 1 or not colours:
        handles += [Line2D([], [], color="grey", linestyle=st, marker=mk, label=b)  # type: ignore[arg-type]
                    for b, (st, mk) in styles.items()]  # (matplotlib types linestyle as a Literal)
    if alpha is not None:
        handles.append(Line2D([], [], color="red", linestyle="--", linewidth=1, label=f"p = {alpha}"))
    ax.legend(handles=handles, fontsize=7, title=f"colour: {colour_title}" + ("\nline: benchmark" if len(styles) > 1 else ""),
              title_fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: never over the data


def accuracy_vs_copies(rows: list[ResultRow], path: Path, title: str) -> Path:
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for r in rows:
        if r.detector == "accuracy" and r.accuracy is not None and r.count is not None:
            series[r.benchmark].append((r.count, r.accuracy))
    styles = benchmark_styles(series)
    for bench, pts in sorted(series.items()):
        _mean_line(ax, pts, bench, marker=styles[bench][1], linestyle=styles[bench][0])
    _copies_axis(ax, [c for pts in series.values() for c, _ in pts])
    ax.set_ylabel("zero-shot accuracy")
    ax.set_title(title)
    if series:
        ax.legend(fontsize=7)
    return _save(fig, path)


def detection_vs_step(rows: list[ResultRow], detector: str, alpha: float, path: Path, title: str) -> Path:
    """log10 p against step, one line per partition: colour = copies, line style = benchmark."""
    fig, ax = plt.subplots(figsize=(8.0, 4.2))
    series: dict[tuple[str, str, int | None], list[tuple[int, float]]] = defaultdict(list)
    for r in rows:
        if r.detector == detector and r.p is not None and r.step is not None:
            series[(r.benchmark, r.partition, r.count)].append((r.step, _log10p(r)))
    counts = sorted({c for _, _, c in series}, key=lambda c: (c is None, c or 0))
    colours = {_count_label(c): ("grey" if c == 0 else PALETTE[i % len(PALETTE)]) for i, c in enumerate(counts)}
    styles = benchmark_styles(b for b, _, _ in series)
    for (bench, _part, count), pts in sorted(series.items(), key=lambda kv: (kv[0][0], kv[0][2] or 0)):
        pts.sort()
        ax.plot([s for s, _ in pts], [y for _, y in pts], marker=styles[bench][1], markersize=4,
                color=colours[_count_label(count)], linestyle=styles[bench][0], alpha=0.8)
    ax.axhline(math.log10(alpha), color="red", linestyle="--", linewidth=1)
    ax.set_xlabel("training step")
    ax.set_ylabel(f"log10 p ({detector})")
    ax.set_title(title)
    _key_legend(ax, colours, styles, alpha, colour_title="copies")
    return _save(fig, path)


def _count_label(count) -> str:
    return "control" if count == 0 else f"{count} copies" if count is not None else "no plan"


def draw_power_curve(ax, curves: dict[str, dict[int, Rate]], alpha: float):
    """Detection rate against copies, one line per detector with its Wilson band; the
    controls' false-positive rate (count 0) as a point with its interval, and alpha."""
    colours = detector_colours(curves)
    for i, (det, by_count) in enumerate(sorted(curves.items())):
        dodge = 2 ** (0.04 * (i - (len(curves) - 1) / 2))  # detectors with equal rates stay visible
        counts = sorted(c for c in by_count if c > 0 and by_count[c].n)
        line, = ax.plot([c * dodge for c in counts], [by_count[c].rate for c in counts], marker="o", label=det,
                        color=colours[det])
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
    fixed = detector_colours(label.split(" ", 1)[0] for label in series if not label.startswith("accuracy"))
    for label, pts in sorted(series.items()):
        pts = sorted(pts)
        detector, count = label.split(" ", 1)[0], label.rsplit("(", 1)[-1].rstrip(")")
        ax, key = (acc_ax, count) if detector == "accuracy" else (p_ax, detector)
        first = key not in colours
        colours.setdefault(key, fixed.get(key) or PALETTE[len(colours) % len(PALETTE)])
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
