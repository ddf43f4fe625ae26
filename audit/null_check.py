"""The null check: every control partition re-tested in fresh random orders on the same checkpoint.

A control was never injected, so the order its test asks about (the item order for the
order tests, each item's option order for option shuffle) is one random draw the model
never saw, and its p-value should be distributed as the p-values of fresh draws of the
same kind on the same checkpoint. The check scores ``audit.null_check.draws`` such draws
(every control of a benchmark redrawn at once, so tests against the other controls stay
like for like) and records their p-values; the report sets each control's own p beside
them. A control whose recorded order fares far better than fresh ones points at a leak
(the recorded order reached training) or at a test that treats the recorded order
differently from the others; fresh draws that fail too point at the test itself.

Rows go to ``audit/null_check.jsonl``, one per (checkpoint, benchmark, control partition,
detector, settings, draws, seed); a rerun skips the rows it has.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from audit.detectors.base import AuditContext, Detector, PartitionData
from audit.sequences import rng_for
from core.atomic import append_jsonl
from core.config import SpikeinConfig
from core.run_dir import RunDir
from core.workers import collective


def null_check_path(run_dir) -> Path:
    return RunDir(run_dir).null_check


def has_order_null(det: Detector) -> bool:
    """The detector tests an order, so a fresh random order is a draw from its null."""
    return type(det).fresh_draw is not Detector.fresh_draw


def draw_rng(seed: int, part: PartitionData, detector: str, draw: int) -> np.random.Generator:
    # a seed path of its own: never the inject plan's (seed_for / sha256), so never a recorded order
    return rng_for(seed, "null_check", part.benchmark, part.name, detector, str(draw))


def fresh_log10_ps(det: Detector, ctx: AuditContext, parts: Sequence[PartitionData], raws: Sequence[dict[str, Any]],
                   draws: int, seed: int) -> dict[str, list[float | None]]:
    """Control partition name -> the log10 p of each fresh draw (all controls redrawn together;
    the injected partitions keep their scores, ``raws``)."""
    controls = [i for i, p in enumerate(parts) if p.is_control]
    out: dict[str, list[float | None]] = {parts[i].name: [] for i in controls}
    for d in range(draws):
        fresh_parts, fresh_raws = list(parts), list(raws)
        for i in controls:
            fresh = det.fresh_draw(parts[i], draw_rng(seed, parts[i], det.name, d))
            assert fresh is not None  # only detectors that test an order come here (tests_an_order)
            fresh_parts[i], fresh_raws[i] = fresh, det.score(ctx, fresh)
        rows = det.summarize(fresh_parts, fresh_raws)
        for i in controls:
            out[parts[i].name].append(rows[i].get("log10_p"))
    return out


def row_key(row: dict[str, Any]) -> tuple:
    return (row.get("model"), row.get("step"), row["benchmark"], row["partition"], row["detector"],
            json.dumps(row.get("settings"), sort_keys=True), row["draws"], row["seed"])


def read_null_rows(run_dir) -> list[dict[str, Any]]:
    from audit.results import read_rows

    return read_rows(null_check_path(run_dir))


def run(cfg: SpikeinConfig, setup, detectors: Sequence[Detector], store, target, settings_of: Callable) -> int:
    """Null-check every control of every benchmark on ``target`` for each order detector;
    returns the rows written. ``settings_of(cfg, bench, det)``: the audit rows' settings
    (the scores of the injected partitions come from the audit's cache under them)."""
    nc = cfg.audit.null_check
    draws, seed = nc.draws, nc.seed
    if draws <= 0 or setup.manifest is None:
        return 0
    path = null_check_path(cfg.run_dir)
    done = collective.broadcast({row_key(r) for r in read_null_rows(cfg.run_dir)} if collective.is_main() else None)
    todo = []
    for bench in setup.benchmarks:
        for det in detectors:
            if not has_order_null(det):
                continue
            settings = settings_of(cfg, bench, det)
            rows = [{"experiment": cfg.experiment_name, "model": target.model, "step": target.step,
                     "benchmark": bench.name, "partition": p.name, "count": p.count, "detector": det.name,
                     "settings": settings, "draws": draws, "seed": seed} for p in bench.partitions if p.is_control]
            if rows and not all(row_key(r) in done for r in rows):
                todo.append((bench, det, settings, rows))
    if not todo:
        return 0
    scorer, model = _scorer(cfg, target)
    written = 0
    try:
        for bench, det, settings, rows in todo:
            t0 = time.perf_counter()
            ctx = AuditContext(scorer, setup.tokenizer, bench.renderer, setup.separator_ids, setup.bos_id)
            raws = [_raw(store, target, bench, det, p, ctx, settings) for p in bench.partitions]
            fresh = fresh_log10_ps(det, ctx, bench.partitions, raws, draws, seed)
            for row in rows:
                row["fresh_log10_p"] = fresh[row["partition"]]
                if collective.is_main() and row_key(row) not in done:
                    append_jsonl(path, row)
                    written += 1
            if collective.is_main():
                print(f"audit: null check {target.tag} {bench.name} {det.name}: {draws} fresh draws for "
                      f"{len(rows)} control(s) in {time.perf_counter() - t0:.1f}s", file=sys.stderr, flush=True)
    finally:
        del scorer, model
    return written


def _raw(store, target, bench, det: Detector, part: PartitionData, ctx: AuditContext, settings) -> dict[str, Any]:
    """A partition's scores as the audit cached them (scored again if the cache is gone)."""
    cached = store.get_raw(target.tag, bench.name, det.name, part.name, settings) if collective.is_main() else None
    cached = collective.broadcast(cached)
    return cached if cached is not None else det.score(ctx, part)


def _scorer(cfg: SpikeinConfig, target):
    from audit.engine import Engine, EngineSettings
    from audit.model import load_model

    a = cfg.audit
    model = load_model(target.path, a.precision, a.device, cfg.model.trust_remote_code)
    settings = EngineSettings(a.context, a.stride, a.token_budget, a.prefix_reuse, False)
    return Engine(model, settings), model


def summary(observed: Sequence[float | None], fresh: Sequence[Sequence[float | None]], alpha: float) -> dict[str, Any]:
    """Controls' own log10 p against their fresh draws: per control the share of fresh draws
    at least as extreme (a p-value of the recorded order among fresh ones), and pooled rates."""
    obs = [o for o in observed if o is not None]
    pooled = [f for fs in fresh for f in fs if f is not None]
    cut = float(np.log10(alpha))
    return {
        "controls": len(obs),
        "flagged": sum(o < cut for o in obs),
        "fresh": len(pooled),
        "fresh_flagged": sum(f < cut for f in pooled),
        "mean_log10_p": float(np.mean(obs)) if obs else None,
        "fresh_mean_log10_p": float(np.mean(pooled)) if pooled else None,
    }


