"""The report's null-check section: each control's p-value (its recorded order) beside the
p-values of fresh random orders on the same checkpoint (``audit/null_check.jsonl``)."""
from __future__ import annotations

import math

import numpy as np

from audit.results import ResultRow, quantile
from report.rates import fmt_rate, row_log10_p, wilson
from report.results import settings_key

UNIFORM_MEAN_LOG10_P = -1 / math.log(10)  # E[log10 p] for p uniform on (0, 1)


def matched(null_rows: list[ResultRow], rows: list[ResultRow]) -> list[tuple[ResultRow, ResultRow]]:
    """(results row, null-check row) pairs: same checkpoint, partition, detector and settings
    (the newest null-check row where a checkpoint was checked more than once)."""
    by_key = {(r.model, r.step, r.benchmark, r.partition, r.detector, settings_key(r)): r
              for r in rows}
    out: dict[tuple, tuple[ResultRow, ResultRow]] = {}
    for n in null_rows:
        key = (n.model, n.step, n.benchmark, n.partition, n.detector, settings_key(n))
        if key in by_key:
            out[key] = (by_key[key], n)
    return list(out.values())


def null_check_section(null_rows: list[ResultRow], rows: list[ResultRow], alpha: float) -> str:
    pairs = matched(null_rows, rows)
    if not pairs:
        return ""
    lines = ["## Null check: the controls against fresh random orders\n",
             "Each control was never injected, so the order its test asks about (item order: ordering, successor; "
             "option order: option shuffle) is one random draw the model never saw. The audit re-tested every "
             "control with fresh random orders on the same checkpoint (`audit.null_check`). A sound null puts the "
             "recorded order's p among the fresh ones; a recorded order that beats most fresh draws points at a "
             "leak of that order into training, and fresh draws below alpha far more often than alpha point at "
             f"the test. Under an exact null the mean log10 p is {UNIFORM_MEAN_LOG10_P:.2f} and a share alpha "
             "falls below alpha.\n",
             "| detector | pooled over | controls with p < alpha (recorded orders) | fresh draws with p < alpha "
             "| mean log10 p: recorded | mean log10 p: fresh |", "|---|---|---|---|---|---|"]
    cut = math.log10(alpha)
    by_det: dict[str, list[tuple[ResultRow, ResultRow]]] = {}
    for r, n in pairs:
        by_det.setdefault(r.detector, []).append((r, n))
    for det, ps in sorted(by_det.items()):
        obs = [o for o in (row_log10_p(r) for r, _ in ps) if o is not None]
        fresh = [f for _, n in ps for f in n.extra.get("fresh_log10_p") or [] if f is not None]
        steps = sorted({r.step for r, _ in ps}, key=lambda s: (s is None, s or 0))
        where = f"{len(ps)} control test(s), step{'s' if len(steps) > 1 else ''} {', '.join(map(str, steps))}"
        lines.append(f"| {det} | {where} | {fmt_rate(wilson(sum(o < cut for o in obs), len(obs)))} "
                     f"| {fmt_rate(wilson(sum(f < cut for f in fresh), len(fresh)))} | {_mean(obs)} | {_mean(fresh)} |")
    lines += ["", "| benchmark | control | detector | step | log10 p (recorded order) | fresh draws | "
              "fresh log10 p: median [min, max] | share of fresh draws at least as extreme |",
              "|---|---|---|---|---|---|---|---|"]
    for r, n in sorted(pairs, key=lambda rn: (rn[0].detector, rn[0].benchmark, rn[0].partition, rn[0].step or 0)):
        fresh = [f for f in n.extra.get("fresh_log10_p") or [] if f is not None]
        q = quantile(row_log10_p(r), fresh)
        spread = (f"{np.median(fresh):.2f} [{min(fresh):.2f}, {max(fresh):.2f}]" if fresh else "-")
        lines.append(f"| {r.benchmark} | {r.partition} | {r.detector} | {r.step} | {_num(row_log10_p(r))} "
                     f"| {len(fresh)} | {spread} | {_num(q)} |")
    return "\n".join(lines) + "\n"


def _mean(xs: list[float]) -> str:
    return f"{float(np.mean(xs)):.2f}" if xs else "-"


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"
