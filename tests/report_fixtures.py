"""Run directories as the report reads them, written with the stages' own writers (manifest,
checkpoint index, results store, resolved config.yaml), with chosen p-values."""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

from audit.results import ROW_FIELDS, ResultsStore
from core.atomic import write_json, write_text
from core.checkpoint_index import Checkpoint, CheckpointIndex
from core.config import config_to_yaml
from core.run_dir import RunDir
from core.wandb_log import redact
from inject.manifest import BenchmarkPlan, Copy, Manifest, Partition
from inject.plan import partition_names

TOKENS_PER_STEP = 100

PFn = Callable[[str, str, int, str, int], "float | None"]  # (benchmark, partition, count, detector, step) -> p


def write_manifest(run: Path, counts: Sequence[int], benchmarks: Sequence[str], copies_end: int) -> Manifest:
    """Each injected partition's copies packed before token ``copies_end`` (so its last
    exposure completes at step ceil(copies_end / TOKENS_PER_STEP))."""
    parts, copies = [], []
    for b in benchmarks:
        for name, c in zip(partition_names(counts), counts):
            parts.append(Partition(b, name, c, 10, f"partitions/{b}/{name}.jsonl"))
            copies += [Copy(b, name, k, copies_end - 10 * (k + 1), copies_end - 10 * k, "document", "mcq")
                       for k in range(c)]
    plans = [BenchmarkPlan(b, "mcq", "document", (0.0, 1.0), 10 * len(counts)) for b in benchmarks]
    m = Manifest("h", "t", "tokenizer", 100, "uint16", 100_000, 0, None, "\n\n", [1], plans, parts, copies,
                 n_documents=50, injected_tokens=sum(c.end - c.start for c in copies))
    write_json(run / "data/manifest.json", m.to_json())
    return m


def write_index(run: Path, steps: Sequence[int]) -> None:
    index = CheckpointIndex.new(seq_len=TOKENS_PER_STEP // 4, global_batch=4)
    RunDir(run).write_index(replace(index, finished=True, checkpoints=tuple(
        Checkpoint(s, s * TOKENS_PER_STEP, 0.0, f"step_{s}/hf") for s in steps)))


def write_rows(run: Path, m: Manifest, p_of: PFn, steps: Sequence[int], detectors: Sequence[str],
               settings: dict[str, dict] | None = None, extra: Callable[..., dict] | None = None) -> None:
    """One results row per (step, partition, detector) through the audit's results store."""
    store = ResultsStore(RunDir(run))
    for step in steps:
        seen = m.copies_seen(step * TOKENS_PER_STEP)
        for part in m.partitions:
            for det in detectors:
                p = p_of(part.benchmark, part.name, part.count, det, step)
                row = dict(experiment="t", model=f"step_{step}", step=step, tokens_seen=step * TOKENS_PER_STEP,
                           benchmark=part.benchmark, partition=part.name, count=part.count,
                           copies_seen=seen[(part.benchmark, part.name)], detector=det, statistic=1.0, p=p,
                           log10_p=None if p is None else math.log10(p), n_items=part.n_items,
                           settings=(settings or {}).get(det, {}))
                row.update(extra(part, det, step) if extra else {})
                store.add({**{k: row.get(k) for k in ROW_FIELDS}, **row})


def compose_config(*overrides: str):
    from launch.config import compose

    return compose(list(overrides))


def write_config(run: Path, cfg) -> dict:
    """``run/config.yaml`` exactly as `spikein run` writes it (resolved, redacted)."""
    resolved = dataclasses.asdict(cfg)
    write_text(run / "config.yaml", config_to_yaml(redact(resolved)))
    return resolved


def settings_for(cfg, m: Manifest) -> dict[str, dict]:
    """detector -> the settings the audit would record for ``cfg`` (one benchmark's)."""
    from report.results import current_settings

    return {det: json.loads(s) for (bench, det), s in current_settings(cfg, m).items()
            if bench == m.benchmarks[0].name}
