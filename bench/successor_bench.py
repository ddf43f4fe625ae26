"""Successor test against the sharded ordering test on the same partitions (issue 9).

For every audited checkpoint of a run and every partition: each detector's log10 p, the
tokens it scored and ran, and its wall time (the demo: ``python bench/successor_bench.py
--run-dir runs/demo``). Extra successor settings (``--block``) show the cost / power
trade-off: a block of b items scores each item after b - 1 others.

    python bench/successor_bench.py --run-dir runs/demo --checkpoints last --block 40 16
    python bench/successor_bench.py --run-dir runs/demo --device cuda --json out.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from audit.detectors import AuditContext, PartitionData, get_detector  # noqa: E402
from audit.engine import Engine, EngineSettings  # noqa: E402
from audit.model import load_model  # noqa: E402
from audit.targets import select, targets_of  # noqa: E402
from core.errors import SpikeinError  # noqa: E402
from core.run_dir import RunDir  # noqa: E402
from inject.manifest import load_manifest, load_partition, load_run_tokenizer  # noqa: E402


def detectors(blocks: list[int], permutations: int, shards: int, ordering_perms: int):
    out = [(f"ordering(shards={shards},perms={ordering_perms})",
            get_detector("ordering", {"shards": shards, "permutations": ordering_perms, "seed": 0}))]
    out += [(f"successor(block={b})", get_detector("successor", {"block": b, "permutations": permutations, "seed": 0}))
            for b in blocks]
    return out


def run_one(det, ctx: AuditContext, parts: list[PartitionData]) -> list[dict]:
    """One detector on all of a benchmark's partitions: its rows plus per-partition cost."""
    costs = []
    for p in parts:
        n0, r0, t0 = ctx.scorer.tokens_scored, ctx.scorer.tokens_run, time.perf_counter()
        raw = det.score(ctx, p)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        costs.append((raw, {"tokens_scored": ctx.scorer.tokens_scored - n0, "tokens_run": ctx.scorer.tokens_run - r0,
                            "wall_s": round(time.perf_counter() - t0, 3)}))
    rows = det.summarize(parts, [raw for raw, _ in costs])
    return [{"log10_p": r["log10_p"], "p_method": r.get("p_method", r.get("test")), **cost}
            for r, (_, cost) in zip(rows, costs)]


def compare(run_dir: str | Path, checkpoints="last", blocks=(40,), permutations=100_000, shards=10,
            ordering_perms=30, device="auto", precision="fp32", context=2048, token_budget=8192) -> list[dict]:
    """One record per (checkpoint, partition, detector)."""
    run_dir = Path(run_dir)
    manifest = load_manifest(run_dir)
    tok = load_run_tokenizer(run_dir, manifest)
    index = RunDir(run_dir).read_index()
    if index is None:
        raise SpikeinError(f"{run_dir}: no checkpoints/index.json; train first")
    benches = {b.name: (b.renderer, [PartitionData(b.name, p.name, p.count, load_partition(run_dir, p))
                                     for p in manifest.partitions if p.benchmark == b.name]) for b in manifest.benchmarks}
    dets = detectors(list(blocks), permutations, shards, ordering_perms)
    out = []
    for target in select(targets_of(run_dir, index), checkpoints):
        model = load_model(target.path, precision, device)
        engine = Engine(model, EngineSettings(context=context, stride=context // 2, token_budget=token_budget,
                                              progress=False))
        for name, (renderer, parts) in benches.items():
            ctx = AuditContext(engine, tok, renderer, list(manifest.separator_ids), manifest.bos_id)
            for label, det in dets:
                for part, rec in zip(parts, run_one(det, ctx, parts)):
                    out.append({"step": target.step, "benchmark": name, "partition": part.name, "count": part.count,
                                "detector": label, **rec})
        del engine, model
    return out


def print_table(records: list[dict]) -> None:
    print(f"{'step':>6} {'benchmark':<10} {'partition':<10} {'count':>5} {'detector':<32} {'log10_p':>8} "
          f"{'method':<13} {'scored':>9} {'run':>9} {'wall_s':>7}")
    for r in records:
        lp = f"{r['log10_p']:.2f}" if r["log10_p"] is not None else "-"
        print(f"{r['step']!s:>6} {r['benchmark']:<10} {r['partition']:<10} {r['count']!s:>5} {r['detector']:<32} "
              f"{lp:>8} {r['p_method']!s:<13} {r['tokens_scored']:>9} {r['tokens_run']:>9} {r['wall_s']:>7.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run-dir", default=str(ROOT / "runs" / "demo"))
    ap.add_argument("--checkpoints", default="last", help="all | last | comma-separated steps")
    ap.add_argument("--block", type=int, nargs="+", default=[40], help="successor block sizes to compare")
    ap.add_argument("--permutations", type=int, default=100_000, help="successor random orders")
    ap.add_argument("--shards", type=int, default=10)
    ap.add_argument("--ordering-permutations", type=int, default=30)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--context", type=int, default=2048)
    ap.add_argument("--token-budget", type=int, default=8192)
    ap.add_argument("--json", default=None, help="also write the records here")
    a = ap.parse_args()
    spec = a.checkpoints if a.checkpoints in ("all", "last") else [int(s) for s in a.checkpoints.split(",")]
    if not Path(a.run_dir).is_dir():
        sys.exit(f"successor_bench: no run dir {a.run_dir} (make demo, or pass --run-dir)")
    try:
        records = compare(a.run_dir, spec, a.block, a.permutations, a.shards, a.ordering_permutations, a.device,
                          a.precision, a.context, a.token_budget)
    except SpikeinError as e:
        sys.exit(f"successor_bench: {e}")
    print_table(records)
    if a.json:
        Path(a.json).write_text(json.dumps(records, indent=1))


if __name__ == "__main__":
    main()
