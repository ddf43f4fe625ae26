"""W&B for the audit (``job_type=audit``, the run's group; rank 0 only): per-checkpoint
scalars, and at the end a results table plus line plots (log10 p against count, against
step; accuracy against count)."""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable

TABLE_COLUMNS = ("step", "tokens_seen", "benchmark", "partition", "count", "copies_seen",
                 "detector", "statistic", "p", "log10_p", "n_items", "wall_s")


def start(cfg, run_dir: str):
    from omegaconf import OmegaConf

    from inject.wandb_log import init_wandb

    run = init_wandb(
        cfg.logger, run_dir=run_dir, job_type="audit",
        config=OmegaConf.to_container(cfg, resolve=True), name=f"{cfg.experiment_name}-audit",
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
    if data:
        run.log({**data, "audit/step": rows[0].get("step") or 0})


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


def log_summary(run, rows: list[dict[str, Any]]) -> None:
    if not run.active:  # no tables or plots to build for a null run
        return
    import wandb

    table = wandb.Table(columns=list(TABLE_COLUMNS), data=[[r.get(c) for c in TABLE_COLUMNS] for r in rows])
    plots: dict[str, Any] = {"audit/results": table}
    for det in sorted({r["detector"] for r in rows}):
        mine = [r for r in rows if r["detector"] == det]
        y = "statistic" if det == "accuracy" else "log10_p"
        label = "accuracy" if det == "accuracy" else "log10 p"
        for x, key in (("count", lambda r: f"step {r.get('step')}"), ("step", lambda r: f"{r['benchmark']}/{r['partition']}")):
            xs, ys, keys = _series(mine, x, y, key)
            if xs:
                plots[f"audit/plots/{det}_{y}_vs_{x}"] = wandb.plot.line_series(
                    xs=xs, ys=ys, keys=keys, title=f"{det}: {label} vs {x}", xname=x
                )
    run.log(plots)
