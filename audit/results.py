"""``audit/results.jsonl`` (one row per checkpoint, benchmark, partition, detector) and the
per-partition score cache that lets a killed audit resume where it stopped.

Rows are appended one at a time and fsynced; a row is identified by the model (checkpoint),
benchmark, partition, detector and settings, so a rerun skips finished rows and a change of
settings adds new rows beside the old ones. A torn last line (killed mid-write) is dropped.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from core.atomic import append_jsonl, write_json, write_text
from core.errors import SpikeinError
from core.run_dir import RunDir

ROW_FIELDS = (
    "experiment", "model", "step", "tokens_seen", "epochs", "benchmark", "partition", "count",
    "copies_seen", "detector", "statistic", "p", "log10_p", "n_items", "wall_s", "tokens_scored", "tokens_run",
    "settings",
)  # tokens_scored: targets scored (log-probs asked for); tokens_run: tokens through the model


def row_key(row: dict[str, Any]) -> tuple:
    settings = json.dumps(row.get("settings", {}), sort_keys=True)
    return (row.get("model"), row.get("step"), row["benchmark"], row["partition"], row["detector"], settings)


def read_rows(path: Path, repair: bool = False) -> list[dict[str, Any]]:
    """All rows; a torn last line is ignored (and cut from the file when ``repair``)."""
    if not path.exists():
        return []
    text = path.read_text()
    lines = text.split("\n")
    last = max((i for i, line in enumerate(lines, 1) if line.strip()), default=0)
    rows, torn = [], False
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except ValueError:
            if lineno < last:  # a bad line followed by more rows is corruption, not a kill
                raise SpikeinError(f"{path}:{lineno}: corrupt results row") from None
            torn = True
    if repair and (torn or not text.endswith("\n")) and text:
        write_text(path, "".join(json.dumps(r) + "\n" for r in rows))
    return rows


class ResultsStore:
    """A run's ``audit/results.jsonl`` and ``audit/raw/`` score cache (``writer``: rank 0)."""

    def __init__(self, run_dir: RunDir, writer: bool = True):
        self.path, self.raw_dir = run_dir.results, run_dir.audit_raw
        self.writer = writer
        self.rows = read_rows(self.path, repair=writer)
        self.keys = {row_key(r) for r in self.rows}

    def has(self, row: dict[str, Any]) -> bool:
        return row_key(row) in self.keys

    def add(self, row: dict[str, Any]) -> bool:
        """Append ``row`` unless an identical key is already there; True if it was new."""
        if self.has(row):
            return False
        self.rows.append(row)
        self.keys.add(row_key(row))
        if self.writer:
            append_jsonl(self.path, row)
        return True

    def _raw_path(self, tag: str, benchmark: str, detector: str, partition: str) -> Path:
        safe = [re.sub(r"[^A-Za-z0-9_.-]+", "_", s) for s in (tag, benchmark, detector, partition)]
        return self.raw_dir / safe[0] / safe[1] / safe[2] / f"{safe[3]}.json"

    def get_raw(self, tag: str, benchmark: str, detector: str, partition: str, settings: dict) -> dict | None:
        """A partition's cached scores, if they were computed with the same settings."""
        path = self._raw_path(tag, benchmark, detector, partition)
        try:
            saved = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        same = json.dumps(saved.get("settings"), sort_keys=True) == json.dumps(settings, sort_keys=True)
        return saved.get("raw") if same else None

    def put_raw(self, tag: str, benchmark: str, detector: str, partition: str, settings: dict, raw: dict) -> None:
        if self.writer:
            write_json(self._raw_path(tag, benchmark, detector, partition), {"settings": settings, "raw": raw})
