"""`spikein audit`: run the configured detectors on every checkpoint of a run (or on one
named model) and append one row per (checkpoint, benchmark, partition, detector) to
``<run_dir>/audit/results.jsonl``.

Two sources:
- ``run_dir=...``: the checkpoints in ``checkpoints/index.json`` (``audit.checkpoints``:
  all | last | [steps]); ``audit.watch=true`` audits each new checkpoint as it lands, until
  training has finished (`spikein run`: while training).
- ``audit.model=<hub id or dir> [audit.benchmark=<name or list>]``: a model nobody
  trained here; each benchmark (from ``benchmarks.<name>``) whole, as partition ``all``
  with no plan (uniform null, p-values flagged uncalibrated).
"""
from __future__ import annotations

import gc
import os
import shutil
import sys
import time
from typing import Any, Iterator

import torch

from audit import null_check, reference, wandb_plots
from audit.detectors import AuditContext, Detector, PartitionData, get_detector
from audit.engine import Engine, EngineSettings
from audit.model import load_model
from audit.results import ROW_FIELDS, ResultsStore, read_rows, row_key
from audit.setup import AuditSetup, BenchmarkData, benchmark_names, configured_renderer, model_setup, run_setup
from audit.targets import Target, select, targets_of, watch
from core.config import AuditBase, SpikeinConfig
from core.errors import SpikeinError
from core.run_dir import RunDir
from core.run_lock import stage_lock
from core.stage_state import StageState, Status
from core.wandb_log import NullRun
from core.workers import collective
from inject.benchmark_checks import warn_answer_position
from inject.manifest import load_manifest


def log(msg: str) -> None:
    if collective.is_main():
        print(f"audit: {msg}", file=sys.stderr, flush=True)


def run_audit(cfg: SpikeinConfig) -> int:
    """The audit stage of one process, or the parent of data-parallel workers when the
    launcher gives several ranks (`spikein audit launcher=torchrun launcher.nproc_per_node=8`);
    a watching audit stays one process beside training."""
    from core.workers.launch import launch_workers, world_size

    if cfg.dry_run:
        return audit_stage(cfg)
    with stage_lock(cfg.run_dir, "audit"):  # one auditor per run dir
        if world_size(cfg.launcher) > 1 and not cfg.audit.watch and "WORLD_SIZE" not in os.environ:
            from audit.worker import save_worker_config

            save_worker_config(cfg)
            launch_workers("audit.worker", cfg.run_dir, cfg.launcher)
            return 0
        return audit_stage(cfg)


def audit_device(cfg: SpikeinConfig) -> str:
    """``audit.device``, except that a watching audit on ``auto`` never takes a GPU training
    uses: the first GPU past training's ranks on this node, else the CPU."""
    a = cfg.audit
    if a.device != "auto" or not a.watch or not torch.cuda.is_available():
        return a.device
    training = cfg.launcher.nproc_per_node if cfg.deepspeed.backend == "nccl" else 0
    if training == 0:
        return "auto"
    if torch.cuda.device_count() > training:
        return f"cuda:{training}"
    log(f"watching on the CPU: training holds all {torch.cuda.device_count()} GPU(s) (audit.device=cuda to share)")
    return "cpu"


def audit_stage(cfg: SpikeinConfig) -> int:
    """Every rank's audit (the lock is the caller's)."""
    collective.maybe_init()
    a = cfg.audit
    setup = model_setup(cfg) if a.model else run_setup(cfg)
    detectors = detectors_of(a)
    for bench in setup.benchmarks:
        warn_answer_position(bench.name, [it for p in bench.partitions for it in p.items], log)
        for part in bench.partitions:
            for det in detectors:
                det.check(part)
    reference.check(cfg, setup.tokenizer)  # an unusable reference is refused before any scoring
    rd = RunDir(cfg.run_dir)
    if cfg.dry_run:
        _print_plan(cfg, setup, detectors)
        return 0
    if cfg.overwrite and collective.is_main():
        rd.results.unlink(missing_ok=True)
        null_check.null_check_path(rd.root).unlink(missing_ok=True)
        shutil.rmtree(rd.audit_raw, ignore_errors=True)
    collective.barrier()
    store = ResultsStore(rd, writer=collective.is_main())
    collective.barrier()  # every rank has read the cache before rank 0 appends to it
    run = wandb_plots.start(cfg, cfg.run_dir) if collective.is_main() else NullRun()
    try:
        checked = None  # the null check's target (audit.null_check.checkpoints)
        for target in _targets(cfg):
            rows = audit_target(cfg, setup, detectors, store, target)
            if rows:
                wandb_plots.log_checkpoint(run, rows)
            if a.null_check.checkpoints == "all":
                null_check.run(cfg, setup, detectors, store, target, row_settings)
            checked = target
        if checked is not None and a.null_check.checkpoints == "last":
            null_check.run(cfg, setup, detectors, store, checked, row_settings)
        wandb_plots.log_summary(run, [r for r in store.rows if r.get("experiment") == cfg.experiment_name])
    finally:
        run.finish()
    log(f"results in {store.path}")
    return 0


def _targets(cfg: SpikeinConfig) -> Iterator[Target]:
    a, rd = cfg.audit, RunDir(cfg.run_dir)
    if a.model:
        yield Target(model=a.model, path=a.model)
        return
    if a.watch:
        spec = a.checkpoints  # watching: all and last both mean every new checkpoint
        steps = None if spec in (None, "all", "last") else set(_steps(spec))

        def read():
            return collective.broadcast(rd.read_index() if collective.is_main() else None)

        def wanted(index):
            return [t for t in targets_of(cfg.run_dir, index) if steps is None or t.step in steps]

        yield from watch(read, wanted, a.poll_s, a.watch_idle_s)
        return
    index = rd.read_index()
    if index is None:
        raise SpikeinError(
            f"no checkpoints: {rd.index} missing; train first, set audit.watch=true to wait, "
            "or audit a model with audit.model=<hub id or path>"
        )
    chosen = select(targets_of(cfg.run_dir, index), a.checkpoints)
    if not chosen:
        raise SpikeinError(f"{rd.index} lists no checkpoints")
    yield from chosen


def _steps(spec) -> list[int]:
    """The steps named by ``audit.checkpoints`` (one step or a list)."""
    return [int(spec)] if isinstance(spec, (int, str)) else [int(s) for s in spec]


def detectors_of(a: AuditBase) -> list[Detector]:
    """The detectors ``audit.detectors`` names, each with its ``audit.<name>`` settings."""
    return [get_detector(n, a.detector(n)) for n in a.detectors]


def row_settings(cfg: SpikeinConfig, bench: BenchmarkData, det: Detector) -> dict[str, Any]:
    a = cfg.audit
    return {**det.settings(), "renderer": bench.renderer, "context": a.context,
            "stride": a.stride, "precision": a.precision, **reference.row_setting(cfg)}


def base_row(cfg: SpikeinConfig, setup: AuditSetup, target: Target, part: PartitionData, det: Detector, settings) -> dict:
    return {
        "experiment": cfg.experiment_name, "model": target.model, "step": target.step,
        "tokens_seen": target.tokens_seen, "epochs": target.epochs, "benchmark": part.benchmark,
        "partition": part.name, "count": part.count, "copies_seen": copies_seen(setup, target, part),
        "detector": det.name, "n_items": len(part.items), "settings": settings,
    }


def copies_seen(setup: AuditSetup, target: Target, part: PartitionData) -> float | int | None:
    """Copies of the partition trained on by this checkpoint (scattered mode: per item, on average)."""
    m = setup.manifest
    if m is None or target.tokens_seen is None:
        return None
    seen = m.copies_seen(target.tokens_seen).get((part.benchmark, part.name), 0)
    if m.benchmark(part.benchmark).mode == "scattered" and part.items:
        return round(seen / len(part.items), 3)
    return seen


def audit_target(cfg: SpikeinConfig, setup: AuditSetup, detectors: list[Detector], store: ResultsStore, target: Target) -> list[dict]:
    """All detectors on all partitions for one model; returns the rows it added."""
    a = cfg.audit
    todo = [
        (bench, det) for bench in setup.benchmarks for det in detectors
        if not all(store.has(base_row(cfg, setup, target, p, det, row_settings(cfg, bench, det)))
                   for p in bench.partitions)
    ]
    if not todo:
        log(f"{target.tag}: all rows cached")
        return []
    reference.ensure_scored(cfg, setup, todo, store)  # the reference model's scores, before this model loads
    log(f"{target.tag}: loading {target.path}")
    model = load_model(target.path, a.precision, audit_device(cfg), cfg.model.trust_remote_code)
    scorer = Engine(model, engine_settings(a))
    added: list[dict] = []
    try:
        for bench, det in todo:
            ctx = AuditContext(scorer, setup.tokenizer, bench.renderer, setup.separator_ids, setup.bos_id)
            added += _audit_one(cfg, setup, store, target, bench, det, ctx)
    finally:
        del scorer, model
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return added


def _audit_one(cfg: SpikeinConfig, setup, store, target, bench: BenchmarkData, det: Detector, ctx: AuditContext) -> list[dict]:
    settings = row_settings(cfg, bench, det)
    raws = [_scored(store, target, bench, det, part, ctx, reference.raw_settings(settings)) for part in bench.partitions]
    paired = reference.paired_tests(cfg, store, bench, det, raws)
    added = []
    for part, raw, stats, pair in zip(bench.partitions, raws, det.summarize(bench.partitions, raws), paired):
        row = {**base_row(cfg, setup, target, part, det, settings), **stats, **pair, **raw["_meta"]}
        row = {**{k: row.get(k) for k in ROW_FIELDS}, **row}
        if store.add(row):
            added.append(row)
    summary = ", ".join(f"{r['partition']}(x{r['count']}) {_fmt(r)}" for r in added)
    log(f"{target.tag} {bench.name} {det.name}: {summary or 'cached'}")
    if (det.name == "option_shuffle" and added and not any(p.is_control for p in bench.partitions)
            and not any(p.option_order == "shuffled" for p in bench.partitions)):  # shuffled: uniform is exact
        log(f"warning: {bench.name} has no control partitions: option_shuffle p-values use the uniform null "
            "(uncalibrated: canonical option order need not be exchangeable)")
    return added


def engine_settings(a: AuditBase) -> EngineSettings:
    """The scoring engine's settings from ``cfg.audit`` (the audited model's and the reference's)."""
    return EngineSettings(a.context, a.stride, a.token_budget, a.prefix_reuse, a.progress, chunk_tokens=a.chunk_tokens)


def raw_key(settings: dict, scorer) -> dict:
    """The raw cache's key: the row's settings plus what can still move a float (batch
    shapes, chunks, the device kind); never the number of ranks (audit/scoring.py)."""
    s = scorer.settings if hasattr(scorer, "settings") else None
    scoring = {"device": scorer.device.type, "chunk_tokens": scorer.chunk_tokens}
    if s is not None:
        scoring.update(token_budget=s.token_budget, prefix_reuse=s.prefix_reuse)
    return {**settings, "scoring": scoring}


def _scored(store, target, bench, det, part, ctx, settings) -> dict:
    """A partition's raw scores: from the cache, or scored now and cached."""
    settings = raw_key(settings, ctx.scorer)
    on_main = store.get_raw(target.tag, bench.name, det.name, part.name, settings) if collective.is_main() else None
    cached = collective.broadcast(on_main)
    if cached is not None:
        return cached
    t0, n0, r0 = time.perf_counter(), ctx.scorer.tokens_scored, ctx.scorer.tokens_run
    raw = det.score(ctx, part)
    # tokens_scored: targets whose log-probs the detector asked for; tokens_run: tokens the model
    # actually ran (after prefix reuse; 0 when another detector's pass was reused)
    raw["_meta"] = {"wall_s": round(time.perf_counter() - t0, 3), "tokens_scored": ctx.scorer.tokens_scored - n0,
                    "tokens_run": ctx.scorer.tokens_run - r0,
                    "context_used": ctx.scorer.context, "stride_used": ctx.scorer.stride}
    store.put_raw(target.tag, bench.name, det.name, part.name, settings, raw)
    return raw


def _fmt(row: dict) -> str:
    if row["detector"] == "accuracy":
        return f"acc={row['statistic']:.3f}" if row.get("statistic") is not None else "acc=?"
    return f"log10p={row['log10_p']:.2f}" if row.get("log10_p") is not None else "p=?"


def _print_plan(cfg: SpikeinConfig, setup: AuditSetup, detectors: list[Detector]) -> None:
    source = cfg.audit.model or f"checkpoints of {cfg.run_dir}"
    print(f"audit plan: {source}; detectors: {', '.join(d.name for d in detectors)}")
    for bench in setup.benchmarks:
        parts = ", ".join(f"{p.name}(count={p.count}, {len(p.items)} items)" for p in bench.partitions)
        print(f"  {bench.name} [renderer {bench.renderer}]: {parts}")
    print(f"  {stage_plan(cfg)}; now {stage_state(cfg).line()}")


# --- the stage's plan and state (reads only: no model, no worker) ----------------------

def stage_state(cfg: SpikeinConfig) -> StageState:
    """How many (checkpoint, detector) pairs already hold every row this config would write."""
    pairs = _pairs(cfg)
    done = sum(ok for _, _, ok in pairs)
    if not pairs:
        return StageState("audit", "absent", "no checkpoint listed yet")
    status: Status = "done" if done == len(pairs) else "resumable" if done else "absent"
    return StageState("audit", status, f"{done} of {len(pairs)} (checkpoint, detector) pairs audited")


def stage_plan(cfg: SpikeinConfig) -> str:
    a, pairs = cfg.audit, _pairs(cfg)
    listed = a.model or RunDir(cfg.run_dir).index.exists()
    n = f"{len({t for t, _, _ in pairs})} checkpoint(s)" if listed else "the checkpoints training writes"
    which = (f"audit.model={a.model}" if a.model else "each checkpoint as it lands" if a.watch
             else f"audit.checkpoints={a.checkpoints}")
    redo = "all rows recomputed (overwrite=true)" if cfg.overwrite else f"{sum(ok for *_, ok in pairs)} already audited"
    return f"{n} x {len(a.detectors)} detector(s) ({', '.join(map(str, a.detectors))}), {redo}; {which}"


def _pairs(cfg: SpikeinConfig) -> list[tuple[Target, str, bool]]:
    """(target, detector, all its rows present) for the targets listed now."""
    rd, a = RunDir(cfg.run_dir), cfg.audit
    detectors = detectors_of(a)
    have = set() if cfg.overwrite else {row_key(r) for r in read_rows(rd.results)}
    benches = _row_benchmarks(cfg, rd)

    def audited(t: Target, det: Detector) -> bool:
        return all(row_key({"model": t.model, "step": t.step, "benchmark": b.name, "partition": p,
                            "detector": det.name, "settings": row_settings(cfg, b, det)}) in have
                   for b, parts in benches for p in parts)

    return [(t, d.name, audited(t, d)) for t in _listed_targets(cfg, rd) for d in detectors]


def _row_benchmarks(cfg: SpikeinConfig, rd: RunDir) -> list[tuple[BenchmarkData, list[str]]]:
    """Each audited benchmark (name, renderer) with its partition names, without loading items."""
    wanted = benchmark_names(cfg.audit.benchmark)
    if cfg.audit.model:
        return [(BenchmarkData(n, configured_renderer(cfg, n), []), ["all"]) for n in wanted or cfg.benchmarks]
    if rd.read_manifest() is None:
        return []
    m = load_manifest(rd.root)
    return [(BenchmarkData(b.name, b.renderer, []), [p.name for p in m.partitions if p.benchmark == b.name])
            for b in m.benchmarks if wanted is None or b.name in wanted]


def _listed_targets(cfg: SpikeinConfig, rd: RunDir) -> list[Target]:
    """What the stage would audit from the index as it is now (steps not yet written are left out)."""
    a = cfg.audit
    if a.model:
        return [Target(model=a.model, path=a.model)]
    index = rd.read_index()
    targets = targets_of(rd.root, index) if index else []
    if a.checkpoints in (None, "all") or (a.watch and a.checkpoints == "last"):
        return targets
    if a.checkpoints == "last":
        return targets[-1:]
    steps = set(_steps(a.checkpoints))
    return [t for t in targets if t.step in steps]
