"""Read what the stages wrote: audit rows, checkpoint index, train metrics."""
from __future__ import annotations

from pathlib import Path
from typing import Any


def audit_rows(run_dir: Path) -> list[dict[str, Any]]:
    from audit.results import read_rows

    return read_rows(Path(run_dir) / "audit" / "results.jsonl")


def checkpoint_index(run_dir: Path) -> dict[str, Any]:
    from train.checkpoint import read_index

    return read_index(run_dir) or {"checkpoints": [], "finished": False}


def final_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of the last audited step only."""
    if not rows:
        return []
    last = max(r["step"] for r in rows)
    return [r for r in rows if r["step"] == last]


def sustained_detection(rows: list[dict[str, Any]], alpha: float) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(benchmark, partition, detector) -> the row from which p < alpha held to the last step.

    A detection must hold at the final audited checkpoint and at every one after the
    step it is dated to: a single early dip below alpha (many checkpoints, many
    partitions: some will) is not reported as a detection.
    """
    series: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in sorted(rows, key=lambda r: r["step"]):
        if r.get("p") is not None:
            series.setdefault((r["benchmark"], r["partition"], r["detector"]), []).append(r)
    out = {}
    for key, rs in series.items():
        since = None
        for r in reversed(rs):
            if r["p"] >= alpha:
                break
            since = r
        if since is not None:
            out[key] = {**since, "final_p": rs[-1]["p"], "final_log10_p": rs[-1].get("log10_p")}
    return out
