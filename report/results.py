"""Read what the stages wrote (audit rows, checkpoint index) and what the reports derive from
it per run: which settings variant to report, detection since exposure, last exposure steps."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from audit.results import ResultRow, expected_settings, read_result_rows
from core.checkpoint_index import CheckpointIndex
from core.config import SpikeinConfig
from core.run_dir import RunDir


def audit_rows(run_dir: Path) -> list[ResultRow]:
    return read_result_rows(RunDir(run_dir))


def checkpoint_index(run_dir: Path) -> CheckpointIndex:
    return RunDir(run_dir).read_index() or CheckpointIndex()


def final_rows(rows: list[ResultRow]) -> list[ResultRow]:
    """Rows of the last audited step only."""
    if not rows:
        return []
    last = max((r.step for r in rows if r.step is not None), default=None)
    return [r for r in rows if r.step == last]


@dataclass(frozen=True)
class Detection:
    since: ResultRow  # the first row of the run of p < alpha that lasts to the last audited step
    final: ResultRow  # the last audited step's row


def sustained_detection(rows: list[ResultRow], alpha: float) -> dict[tuple[str, str, str], Detection]:
    """(benchmark, partition, detector) -> the row from which p < alpha held to the last step.

    A detection must hold at the final audited checkpoint and at every one after the
    step it is dated to: a single early dip below alpha (many checkpoints, many
    partitions: some will) is not reported as a detection. This dates a detection; it is
    not "detected at every checkpoint since exposure" (see detected_since_exposure), which
    also requires p < alpha at the checkpoints between exposure and that date.
    """
    series: dict[tuple[str, str, str], list[ResultRow]] = {}
    for r in sorted(rows, key=lambda r: r.step or 0):
        if r.p is not None:
            series.setdefault((r.benchmark, r.partition, r.detector), []).append(r)
    out = {}
    for key, rs in series.items():
        since = None
        for r in reversed(rs):
            if r.p is None or r.p >= alpha:
                break
            since = r
        if since is not None:
            out[key] = Detection(since, rs[-1])
    return out


def settings_key(row: ResultRow) -> str:
    return row.settings_key()


def current_settings(cfg: SpikeinConfig, manifest) -> dict[tuple[str, str], str]:
    """(benchmark, detector) -> the settings key the config ``cfg`` would audit with now."""
    benchmarks = [(plan.name, plan.renderer) for plan in manifest.benchmarks]
    return {key: json.dumps(settings, sort_keys=True) for key, settings in expected_settings(cfg, benchmarks).items()}


def split_by_settings(rows: list[ResultRow], current: dict[tuple[str, str], str] | None = None
                      ) -> tuple[list[ResultRow], list[ResultRow]]:
    """(rows to report, rows scored with other settings).

    Per (benchmark, detector) one settings variant is reported: the current config's
    where it has rows, else the one of the newest row (re-auditing with other settings
    appends rows beside the old ones; mixing both in one table mixes two experiments).
    """
    chosen: dict[tuple[str, str], str] = {}
    for r in rows:  # file order: later rows win
        chosen[(r.benchmark, r.detector)] = settings_key(r)
    present = {(r.benchmark, r.detector, settings_key(r)) for r in rows}
    for key, s in (current or {}).items():
        if (*key, s) in present:
            chosen[key] = s
    keep = [r for r in rows if settings_key(r) == chosen[(r.benchmark, r.detector)]]
    other = [r for r in rows if settings_key(r) != chosen[(r.benchmark, r.detector)]]
    return keep, other


def exposed(r: ResultRow) -> bool:
    """Every planned copy of the row's partition was trained on by its checkpoint."""
    return r.count is not None and r.count > 0 and r.copies_seen is not None and r.copies_seen >= r.count


def detected_since_exposure(rows: list[ResultRow], alpha: float) -> dict[tuple[str, str, str], bool]:
    """(benchmark, partition, detector) -> p < alpha at every audited checkpoint since the
    first one that had trained on all of the partition's copies.

    Only injected partitions with at least one audited checkpoint after exposure appear.
    """
    from report.rates import flagged

    out: dict[tuple[str, str, str], bool] = {}
    for r in rows:
        if r.p is None or not exposed(r):
            continue
        key = (r.benchmark, r.partition, r.detector)
        out[key] = out.get(key, True) and flagged(r, alpha)
    return out


def smallest_count(hits: dict[tuple[str, str, str], bool], counts: dict[tuple[str, str], int], detector: str) -> int | None:
    """The smallest count at which every assessed partition of that count is detected."""
    by_count: dict[int, list[bool]] = {}
    for (bench, part, det), hit in hits.items():
        if det == detector:
            by_count.setdefault(counts[(bench, part)], []).append(hit)
    return min((c for c, hs in by_count.items() if all(hs)), default=None)


def last_exposure_steps(manifest, index: CheckpointIndex) -> dict[tuple[str, str], int]:
    """(benchmark, partition) -> the first checkpoint step after the partition's last copy
    was trained on: the manifest's record where it has one, else from the copies' token
    offsets (a copy ending at token e is complete after step ceil(e / tokens per step);
    later epochs see it again every n_tokens)."""
    recorded = _recorded_exposures(manifest)
    tps = index.step_tokens()
    if not tps or not index.checkpoints:
        return recorded
    trained = index.tokens_seen
    out: dict[tuple[str, str], int] = {}
    for c in manifest.copies:
        if c.end > trained:
            continue
        epochs_after = (trained - c.end) // manifest.n_tokens if manifest.n_tokens else 0
        step = -(-(c.end + epochs_after * manifest.n_tokens) // tps)
        key = (c.benchmark, c.partition)
        out[key] = max(out.get(key, 0), step)
    return {**out, **recorded}


def first_exposure_steps(manifest, index: CheckpointIndex) -> dict[tuple[str, str], int]:
    """(benchmark, partition) -> the first step whose checkpoint has trained on a whole copy
    of the partition (a copy ending at token e: step ceil(e / tokens per step))."""
    tps = index.step_tokens()
    if not tps:
        return {}
    out: dict[tuple[str, str], int] = {}
    for c in manifest.copies:
        key = (c.benchmark, c.partition)
        out[key] = min(out.get(key, c.end), c.end)
    return {k: -(-end // tps) for k, end in out.items()}


def _recorded_exposures(manifest) -> dict[tuple[str, str], int]:
    """A partition's ``last_exposure_step``, on the partition or in ``manifest.extra``."""
    out = {(p.benchmark, p.name): int(p.last_exposure_step)
           for p in manifest.partitions if getattr(p, "last_exposure_step", None) is not None}
    extra = (manifest.extra or {}).get("last_exposure_step") or {}
    out.update({tuple(k.split("/", 1)): int(v) for k, v in extra.items()})
    return out
