"""How far audit precision moves p-values: bf16 and mixed against fp32 on a run's checkpoints (CPU).

Copies the run dir (the original is only read), audits its last checkpoint (``--checkpoints``) with all eight detectors
at each precision on the CPU (which runs bf16 too) and prints, per detector, the largest
|log10 p| difference from fp32 over checkpoints and partitions (accuracy: its fraction).

    python bench/precision_bench.py /path/to/runs/demo [--scratch DIR]
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DETECTORS = ["ordering", "successor", "option_shuffle", "accuracy", "loss", "zlib", "min_k", "min_k_pp"]


def audit(run: Path, dest: Path, precision: str, checkpoints: str, table_only: bool = False) -> dict:
    from audit.stage import run_audit
    from launch.config import compose

    if not dest.exists():  # an earlier, interrupted call's copy keeps its finished rows (the audit resumes)
        shutil.copytree(run, dest, ignore=shutil.ignore_patterns("audit", "report", "wandb", "ds", ".lock.*"))
    cfg = compose([f"run_dir={dest}", "experiment=demo", "logger.mode=disabled", f"audit.checkpoints={checkpoints}",
                   f"audit.detectors=[{','.join(DETECTORS)}]", "audit.device=cpu", f"audit.precision={precision}",
                   "audit.progress=false"])
    if not table_only:
        run_audit(cfg)
    rows = [json.loads(x) for x in (dest / "audit" / "results.jsonl").read_text().splitlines() if x.strip()]
    return {(r["detector"], r["step"], r["benchmark"], r["partition"]):
            r["statistic"] if r["detector"] == "accuracy" else r["log10_p"] for r in rows}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("--scratch", type=Path)
    p.add_argument("--precisions", nargs="+", default=["fp32", "amp", "mixed", "bf16"])
    p.add_argument("--checkpoints", default="last", help="audit.checkpoints: last, all or [steps]")
    p.add_argument("--table-only", action="store_true", help="the table from the rows --scratch already holds")
    args = p.parse_args()
    sys.path.insert(0, str(REPO))
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="precision_bench_"))
    res = {prec: audit(args.run_dir, scratch / prec, prec, args.checkpoints, args.table_only)
           for prec in args.precisions}
    ref = res["fp32"]
    others = [q for q in args.precisions if q != "fp32"]
    print("| detector | " + " | ".join(f"max abs diff {q} vs fp32" for q in others) + " | rows | largest fp32 log10 p moved |")
    print("|---|" + "---|" * (len(others) + 2))
    for det in DETECTORS:
        keys = [k for k in ref if k[0] == det and ref[k] is not None]
        diffs = {q: max((abs(res[q][k] - ref[k]) for k in keys if res[q].get(k) is not None), default=0.0) for q in others}
        worst = max(keys, key=lambda k: abs(res[others[0]][k] - ref[k])) if keys else None
        where = f"step {worst[1]} {worst[2]}/{worst[3]}: {ref[worst]:.2f}" if worst else "-"
        print(f"| {det} | " + " | ".join(f"{diffs[q]:.3f}" for q in others) + f" | {len(keys)} | {where} |")


if __name__ == "__main__":
    main()
