"""W&B for the audit (``job_type=audit``, the run's group; rank 0 only): per-checkpoint
scalars, and at the end a results table plus line plots (log10 p against count, against
step; accuracy against count)."""
from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from typing import Any, Iterable

from core.config import SpikeinConfig

TABLE_COLUMNS = ("step", "tokens_seen", "benchmark", "partition", "count", "copies_seen",
                 "detector", "statistic", "p", "log10_p", "n_items", "wall_s",
                 "null", "calibrated", "settings")  # what each number depends on, beside it


def start(cfg: SpikeinConfig, run_dir: str):
    from core.wandb_log import init_wandb

    run = init_wandb(
        cfg.logger, run_dir=run_dir, job_type="audit",
        config=dataclasses.asdict(cfg), name=f"{cfg.experiment_name}-audit",
    )
    run.define_metric("audit/step")
    run.define_metric("audit/*", step_metric="audit/step")
    return run


def log_checkpoint(run, rows: Iterable[dict[str, Any]]) -> None:
    """One point per (benchmark, partition, detector) at this checkpoint's step."""
    rows = list(rows)
    data: dict[str, Any] = {}
    for r in rows:
        base = f"audit/{r['detector']}/{r['benchmark']}/{r['partition']}"
        if r.get("log10_p") is not None:
            data[f"{base}/log10_p"] = r["log10_p"]
        if r.get("statistic") is not None:
            data[f"{base}/statistic"] = r["statistic"]
        if r.get("paired_log10_p") is not None:  # audit.reference_model's paired test
            data[f"{base}/paired_log10_p"] = r["paired_log10_p"]
    if data:
        run.log({**data, "audit/step": rows[0].get("step") or 0})


def _cell(value: Any) -> Any:
    """Nested values (settings) as sorted JSON: W&B table cells are scalars."""
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else value


def _series(rows, x: str, y: str, key) -> tuple[list, list[list], list[str]]:
    """Curves of ``y`` against ``x``, one per ``key(row)``, on a shared sorted x axis (mean per x)."""
    by: dict[Any, dict[Any, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r.get(x) is not None and r.get(y) is not None:
            by[key(r)][r[x]].append(float(r[y]))
    xs = sorted({v for curve in by.values() for v in curve})
    keys = sorted(by, key=str)
    ys = [[sum(by[k][v]) / len(by[k][v]) if by[k].get(v) else float("nan") for v in xs] for k in keys]
    return xs, ys, [str(k) for k in keys]


def settings_variants(rows: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """(suffix, rows) per settings variant of one detector's rows: a single variant has
    no suffix; otherwise the settings that differ name it (curves never mix variants)."""
    by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by[json.dumps(r.get("settings"), sort_keys=True)].append(r)
    if len(by) == 1:
        return [("", rows)]
    parsed = {k: json.loads(k) or {} for k in by}
    differ = sorted({k for s in parsed.values() for k in s if len({json.dumps(p.get(k)) for p in parsed.values()}) > 1})
    return [("_" + "_".join(f"{k}={parsed[key].get(k)}" for k in differ), rs) for key, rs in by.items()]


def log_summary(run, rows: list[dict[str, Any]]) -> None:
    if not run.active:  # no tables or plots to build for a null run
        return
    import wandb

    table = wandb.Table(columns=list(TABLE_COLUMNS), data=[[_cell(r.get(c)) for c in TABLE_COLUMNS] for r in rows])
    plots: dict[str, Any] = {"audit/results": table}
    for det in sorted({r["detector"] for r in rows}):
        y = "statistic" if det == "accuracy" else "log10_p"
        label = "accuracy" if det == "accuracy" else "log10 p"
        for suffix, mine in settings_variants([r for r in rows if r["detector"] == det]):
            for x, key in (("count", lambda r: f"step {r.get('step')}"), ("step", lambda r: f"{r['benchmark']}/{r['partition']}")):
                xs, ys, keys = _series(mine, x, y, key)
                if xs:
                    plots[f"audit/plots/{det}_{y}_vs_{x}{suffix}"] = wandb.plot.line_series(
                        xs=xs, ys=ys, keys=keys, title=f"{det}{suffix.replace('_', ' ')}: {label} vs {x}", xname=x
                    )
    run.log(plots)
