"""Aggregate every run of a sweep into one table and one plot."""
from __future__ import annotations

from pathlib import Path

from inject.atomic import write_text
from inject.errors import SpikeinError
from launch import plots
from launch.results import audit_rows, final_rows


def sweep_runs(sweep_dir: Path) -> list[Path]:
    return sorted(p.parent.parent for p in sweep_dir.glob("**/audit/results.jsonl"))


def write_sweep_report(sweep_dir: Path, alpha: float) -> Path:
    runs = sweep_runs(sweep_dir)
    if not runs:
        raise SpikeinError(f"no runs with audit results under {sweep_dir}")
    rows = []
    for run in runs:
        for r in final_rows(audit_rows(run)):
            rows.append({**r, "run": str(run.relative_to(sweep_dir))})
    out = sweep_dir / "report"
    head = "| run | benchmark | partition | copies | detector | statistic | log10 p |\n|---|---|---|---|---|---|---|"
    body = [
        f"| {r['run']} | {r['benchmark']} | {r['partition']} | {r['count']} | {r['detector']} | "
        f"{_num(r.get('statistic'), '.4g')} | {_num(r.get('log10_p'), '.2f')} |"
        for r in sorted(rows, key=lambda r: (r["run"], r["benchmark"], r["count"], r["detector"]))
    ]
    fig = _plot(rows, alpha, out / "sweep_detection.png")
    write_text(out / "report.md", "\n".join([
        f"# spikein sweep report: {sweep_dir.name}\n", f"{len(runs)} runs; final checkpoint of each.\n",
        head, *body, "", f"![sweep]({fig.name})", "",
    ]))
    return out / "report.md"


def _num(x, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def _plot(rows, alpha: float, path: Path) -> Path:
    relabelled = [{**r, "benchmark": f"{r['run']}:{r['benchmark']}"} for r in rows]
    return plots.detection_vs_copies(relabelled, alpha, path, "sweep: detection at the final checkpoint")
