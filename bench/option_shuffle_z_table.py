"""Issue 22's table over any number of finished runs, from their audit rows alone (no model):
the z of each partition's mean option-shuffle rank at step 0, at the middle checkpoint and
(controls only) at the last step, and the controls' false-positive rates with Wilson intervals.

    PYTHONPATH=. python bench/option_shuffle_z_table.py RUN_DIR [RUN_DIR ...]
"""
from __future__ import annotations

import math
import sys

import numpy as np

from audit.results import read_rows
from core.run_dir import RunDir
from report.rates import fmt_rate, wilson


def z_of(row) -> float:
    n_orders = 24  # 4 options, all orders (the demo's benchmarks)
    sd = math.sqrt((n_orders**2 - 1) / 12 / row["n_items"])
    return (row["mean_rank"] - (n_orders + 1) / 2) / sd


def _before_exposure(rows, steps: list[int]) -> int | None:
    """The last audited step after the first at which no partition had seen a copy (the demo: 216),
    else None (a run with more checkpoints has several after exposure: never the middle index)."""
    clean = [s for s in steps[1:-1] if all(not r.get("copies_seen") for r in rows if r["step"] == s)]
    return clean[-1] if clean else None


def main(run_dirs: list[str]) -> int:
    first, middle, last = ("first audited checkpoint (the demo: step 0), all partitions",
                            "last checkpoint before any copy (the demo: 215-216), all partitions",
                            "last step, the control partitions only")
    cells: dict[str, list[float]] = {first: [], middle: [], last: []}
    last_p: list[float] = []
    for d in run_dirs:
        rows = [r for r in read_rows(RunDir(d).results) if r["detector"] == "option_shuffle" and r.get("mean_rank") is not None]
        steps = sorted({r["step"] for r in rows})
        if len(steps) < 2:
            print(f"{d}: fewer than 2 audited steps, skipped", file=sys.stderr)
            continue
        mid = _before_exposure(rows, steps)
        for r in rows:
            if r["step"] == steps[0]:
                cells[first].append(z_of(r))
            elif r["step"] == mid:
                cells[middle].append(z_of(r))
            elif r["step"] == steps[-1] and r["count"] == 0:
                cells[last].append(z_of(r))
                last_p.append(r["p"])
    print(f"{len(run_dirs)} run(s)\n\n| per-partition z of the mean rank | partitions | mean z | s.d. of z (null: 1) |")
    print("|---|---|---|---|")
    for name, zs in cells.items():
        if zs:
            sd = f"{np.std(zs, ddof=1):.2f}" if len(zs) > 1 else "-"
            print(f"| {name} | {len(zs)} | {np.mean(zs):.2f} | {sd} |")
    for alpha in (0.05, 0.01):
        k = sum(p < alpha for p in last_p)
        print(f"\ncontrols' option-shuffle FPR at {alpha}: {fmt_rate(wilson(k, len(last_p)))}", end="")
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
