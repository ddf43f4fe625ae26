"""Is the option-shuffle null exact on a trained run? (issue 22)

For each audited checkpoint of a run made with ``inject.option_order=shuffled``: the z of
every partition's mean rank, z = (mean rank - (n+1)/2) / sqrt((n^2-1)/12/items), for

- the run's control partitions (their recorded orders, as the audit tests them), and
- *virtual controls*: the benchmark items no partition holds, each in the very order
  ``inject.plan.option_order_for`` gives it (the seed path every recorded order takes),
  cut into partitions of ``--size``. They were never in the stream, like the controls, so
  a leak through the seed path or the world's text shows up in them too; many of them
  measure the s.d. of z that a handful of controls cannot.

Also checked without a model: every stored control's option order equals
``option_order_for`` of its index, and no control's question occurs in the token stream.

    PYTHONPATH=. python bench/option_shuffle_null.py RUN_DIR [--steps 0 431] [--size 40] [--out z.json]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path

import numpy as np

from audit.detectors import AuditContext, PartitionData, get_detector, spikein_config_class
from audit.engine import Engine, EngineSettings
from audit.model import load_model
from core.checkpoint_index import CheckpointIndex
from core.config import config_from_yaml
from core.run_dir import RunDir
from inject.benchmarks import load_benchmark
from inject.items import permute_choices
from inject.manifest import load_manifest, load_partition, load_run_tokenizer
from inject.plan import option_order_for
from inject.render import encode_text, question_text


def z_of(ranks, n_orders: int = 24) -> float:
    r = np.asarray(ranks, dtype=float)
    return float((r.mean() - (n_orders + 1) / 2) / math.sqrt((n_orders**2 - 1) / 12 / len(r)))


def recorded_orders_match(cfg, m, run_dir) -> int:
    """Stored control rows carry the order option_order_for gives their index (count of mismatches)."""
    bad = 0
    for p in m.partitions:
        rows = [json.loads(x) for x in RunDir(run_dir).data_file(p.file).read_text().splitlines() if x.strip()]
        for idx, row in zip(p.item_indices, rows):
            bad += tuple(row["option_order"]) != option_order_for(cfg.inject.seed, p.benchmark, idx, len(row["choices"]))
    return bad


def questions_in_stream(m, tok, run_dir, parts) -> int:
    """How many of the partitions' question lines occur anywhere in the stream's tokens."""
    stream = np.fromfile(RunDir(run_dir).stream, dtype=m.dtype).tobytes()
    width = np.dtype(m.dtype).itemsize
    hits = 0
    for part in parts:
        for it in part.items:
            pat = np.asarray(encode_text(tok, question_text(it).strip()), dtype=m.dtype).tobytes()
            at = stream.find(pat)
            while at != -1 and at % width:
                at = stream.find(pat, at + 1)
            hits += at != -1
    return hits


def virtual_controls(cfg, m, size: int) -> list[PartitionData]:
    """Items no partition holds, in their option_order_for orders, in partitions of ``size``."""
    out = []
    synthetic = dataclasses.asdict(cfg.data.synthetic)
    for plan in m.benchmarks:
        spec = cfg.benchmarks[plan.name]
        items = load_benchmark(plan.name, spec, synthetic=synthetic)
        used = {i for p in m.partitions if p.benchmark == plan.name for i in p.item_indices}
        free = [i for i in range(len(items)) if i not in used]
        seeded = [permute_choices(items[i], option_order_for(cfg.inject.seed, plan.name, i, len(items[i].choices)))
                  for i in free]
        for k in range(len(seeded) // size):
            out.append(PartitionData(plan.name, f"v{k}", 0, seeded[k * size:(k + 1) * size], option_order="shuffled"))
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir")
    ap.add_argument("--steps", type=int, nargs="*")
    ap.add_argument("--size", type=int, default=40)
    ap.add_argument("--out")
    a = ap.parse_args()
    run_dir = Path(a.run_dir)
    cfg = config_from_yaml((run_dir / "config.yaml").read_text(), spikein_config_class())
    m = load_manifest(run_dir)
    tok = load_run_tokenizer(run_dir, m)
    controls = [PartitionData(p.benchmark, p.name, p.count, load_partition(run_dir, p), option_order="shuffled")
                for p in m.partitions if p.count == 0]
    virtual = virtual_controls(cfg, m, a.size)
    report = {"run_dir": str(run_dir), "seed": cfg.seed, "order_mismatches": recorded_orders_match(cfg, m, run_dir),
              "control_questions_in_stream": questions_in_stream(m, tok, run_dir, controls),
              "virtual_questions_in_stream": questions_in_stream(m, tok, run_dir, virtual),
              "n_virtual": len(virtual), "steps": {}}
    print(json.dumps({k: v for k, v in report.items() if k != "steps"}), flush=True)
    index = RunDir(run_dir).read_index() or CheckpointIndex()
    det = get_detector("option_shuffle", {"isolation_forest": False, "seed": cfg.seed})
    for c in index.with_hf():
        if a.steps and c.step not in a.steps:
            continue
        model = load_model(str(RunDir(run_dir).hf_dir(c.step)), "fp32", "cpu", False)
        ctx = AuditContext(Engine(model, EngineSettings(progress=False)), tok, "mcq", list(m.separator_ids), m.bos_id)
        out = {}
        for part in controls + virtual:
            ranks = det.score(ctx, part)["rank"]
            out[f"{part.benchmark}/{part.name}"] = {"z": z_of(ranks), "ranks": ranks}
        zs = [v["z"] for k, v in out.items() if "/v" in k]
        cz = [v["z"] for k, v in out.items() if "/v" not in k]
        print(f"step {c.step}: controls z {np.round(cz, 2).tolist()}; virtual controls: {len(zs)} partitions, "
              f"mean z {np.mean(zs):.2f}, s.d. {np.std(zs, ddof=1):.2f}", flush=True)
        report["steps"][c.step] = out
        if a.out:
            Path(a.out).write_text(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
