"""``audit/results.jsonl`` (one row per checkpoint, benchmark, partition, detector) and the
per-partition score cache that lets a killed audit resume where it stopped.

The hand-off to the report: :class:`ResultRow` and its readers, the null check's rows, and
the settings a config would audit with are all the report takes from ``audit/``.

Rows are appended one at a time and fsynced; a row is identified by the model (checkpoint),
benchmark, partition, detector and settings, so a rerun skips finished rows and a change of
settings adds new rows beside the old ones. A torn last line (killed mid-write) is dropped.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from core.atomic import append_jsonl, write_json, write_text
from core.errors import SpikeinError
from core.run_dir import RunDir

if TYPE_CHECKING:
    from core.config import SpikeinConfig

ROW_FIELDS = (
    "experiment", "model", "step", "tokens_seen", "epochs", "benchmark", "partition", "count",
    "copies_seen", "detector", "statistic", "p", "log10_p", "n_items", "wall_s", "tokens_scored", "tokens_run",
    "settings",
)  # tokens_scored: targets scored (log-probs asked for); tokens_run: tokens through the model
TYPED_FIELDS = ROW_FIELDS  # ResultRow's fields; a detector's own keys go to its ``extra``


@dataclass(frozen=True)
class ResultRow:
    """One row of ``audit/results.jsonl`` as its readers (the report) see it.

    The fields every row has (``ROW_FIELDS``; older rows may lack the cost ones: None)
    are typed; what a detector adds beside them (accuracy, auroc, null, rate_a, paired_p,
    fresh_log10_p of a null-check row, ...) stays in ``extra`` under its JSON key. The
    audit writes rows as JSON objects; this type changes nothing on disk.
    """

    benchmark: str
    partition: str
    detector: str
    step: int | None = None  # None: a model nobody trained here (``audit.model``)
    model: str | None = None
    experiment: str | None = None
    tokens_seen: int | None = None
    epochs: float | None = None
    count: int | None = None
    copies_seen: float | None = None  # scattered mode: per item, on average
    statistic: float | None = None
    p: float | None = None
    log10_p: float | None = None  # recorded where p underflows to 0
    n_items: int | None = None
    wall_s: float | None = None
    tokens_scored: int | None = None
    tokens_run: int | None = None
    settings: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ResultRow:
        known = {k: d[k] for k in TYPED_FIELDS if k in d}
        return cls(**known, extra={k: v for k, v in d.items() if k not in TYPED_FIELDS})

    @property
    def accuracy(self) -> float | None:
        """The accuracy detector's accuracy (its statistic in rows that did not record it apart)."""
        value = self.extra.get("accuracy", self.statistic)
        return None if value is None else float(value)

    def settings_key(self) -> str:
        """What the row's number depends on besides the model (detector settings, renderer, engine)."""
        return json.dumps(self.settings, sort_keys=True)


def read_result_rows(run_dir: RunDir) -> list[ResultRow]:
    """A run's audit rows, typed (a torn last line ignored, as :func:`read_rows`)."""
    return [ResultRow.from_json(r) for r in read_rows(run_dir.results)]


def read_null_check_rows(run_dir: RunDir) -> list[ResultRow]:
    """The null check's rows (``audit/null_check.jsonl``): a control's identity and settings as in
    its results row, and the p-values of fresh orders in ``extra["fresh_log10_p"]``."""
    return [ResultRow.from_json(r) for r in read_rows(run_dir.null_check)]


def quantile(observed: float | None, fresh: Sequence[float | None]) -> float | None:
    """(1 + #{fresh p <= observed p}) / (1 + draws): small when the recorded order beats fresh ones."""
    fs = [f for f in fresh if f is not None]
    if observed is None or not fs:
        return None
    return (1 + sum(f <= observed for f in fs)) / (1 + len(fs))


def expected_settings(cfg: SpikeinConfig, benchmarks: Iterable[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
    """(benchmark, detector) -> the settings rows audited under ``cfg`` would carry, for each
    (benchmark name, renderer); detectors this checkout does not have are left out."""
    from audit.detectors import get_detector
    from audit.setup import BenchmarkData
    from audit.stage import row_settings

    out = {}
    for name in cfg.audit.detectors:
        try:
            det = get_detector(name, cfg.audit.detector(name))
        except SpikeinError:  # a detector this checkout does not have
            continue
        for bench, renderer in benchmarks:
            out[(bench, det.name)] = row_settings(cfg, BenchmarkData(bench, renderer, []), det)
    return out


def saved_config(config: Mapping[str, Any]) -> SpikeinConfig:
    """A run's saved config.yaml (a mapping) typed, with this checkout's detector sections."""
    from audit.detectors import spikein_config_class
    from core.config import config_from_yaml

    return config_from_yaml(config, spikein_config_class())


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
