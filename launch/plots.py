"""The report's plots: detection and accuracy against copies, detection against step."""
from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

P_DETECTORS_EXCLUDE = {"accuracy"}


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


def detection_vs_copies(rows: list[dict[str, Any]], alpha: float, path: Path, title: str) -> Path:
    """log10 p against copies, one line per (benchmark, detector); the alpha line drawn."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    series: dict[tuple[str, str], list[tuple[int, float]]] = defaultdict(list)
    for r in rows:
        if r["detector"] not in P_DETECTORS_EXCLUDE and r.get("p") is not None:
            series[(r["benchmark"], r["detector"])].append((r["count"], _log10p(r)))
    for (bench, det), pts in sorted(series.items()):
        pts.sort()
        ax.plot([_xcount(c) for c, _ in pts], [y for _, y in pts], marker="o", alpha=0.8, label=f"{det} ({bench})")
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
        pts.sort()
        ax.plot([_xcount(c) for c, _ in pts], [y for _, y in pts], marker="o", label=bench)
    _copies_axis(ax, [c for pts in series.values() for c, _ in pts])
    ax.set_ylabel("zero-shot accuracy")
    ax.set_title(title)
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


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.tight_layout()
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path
