"""Read what the stages wrote: audit rows, checkpoint index, train metrics."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def audit_rows(run_dir: Path) -> list[dict[str, Any]]:
    from audit.results import read_rows

    return read_rows(Path(run_dir) / "audit" / "results.jsonl")


def checkpoint_index(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "checkpoints" / "index.json"
    return json.loads(path.read_text()) if path.exists() else {"checkpoints": [], "finished": False}


def final_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of the last audited step only."""
    if not rows:
        return []
    last = max(r["step"] for r in rows)
    return [r for r in rows if r["step"] == last]


def first_detection(rows: list[dict[str, Any]], alpha: float) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(benchmark, partition, detector) -> the earliest row with p < alpha."""
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in sorted(rows, key=lambda r: r["step"]):
        key = (r["benchmark"], r["partition"], r["detector"])
        if r.get("p") is not None and r["p"] < alpha and key not in out:
            out[key] = r
    return out
