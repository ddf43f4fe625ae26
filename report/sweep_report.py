"""Aggregate every run of a sweep: detection rates with Wilson intervals per (detector,
copies), grouped by the swept keys other than the seed, a power curve per group, and
each run's final-checkpoint table."""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

from audit.results import ResultRow
from core.atomic import write_text
from core.errors import SpikeinError
from core.run_dir import RunDir
from report import plots
from report.rates import Rate, detection_rate, fmt_rate
from report.results import audit_rows, current_settings, final_rows, split_by_settings

# Keys that differ between sweep points without being swept (each point has its own run dir).
NOT_SWEPT = {"run_dir", "sweep_dir", "seed"}


@dataclass
class SweepRun:
    path: Path
    name: str  # relative to the sweep dir
    config: dict[str, Any] | None  # the run's resolved config.yaml, if it wrote one
    overrides: list[str]  # Hydra's record of the point's overrides, if any
    rows: list[ResultRow]  # final audited checkpoint, the run's own settings only


def sweep_runs(sweep_dir: Path) -> list[Path]:
    return [rd.root for rd in RunDir.with_results_under(sweep_dir)]


def load_run(sweep_dir: Path, run: Path) -> SweepRun:
    rd = RunDir(run)
    config = _read_yaml(rd.config_yaml) or _read_yaml(run / ".hydra" / "config.yaml")  # Hydra's record
    overrides = _read_yaml(run / ".hydra" / "overrides.yaml") or []
    current = None
    if config is not None and rd.manifest.exists():
        from audit.results import saved_config
        from inject.manifest import load_manifest

        try:
            current = current_settings(saved_config(config), load_manifest(run))
        except SpikeinError:  # a record that does not resolve (Hydra's own may hold ${hydra:...}): newest rows
            current = None
    rows = final_rows(split_by_settings(audit_rows(run), current)[0])
    return SweepRun(run, str(run.relative_to(sweep_dir)), config, [str(o) for o in overrides], rows)


def _read_yaml(path: Path) -> Any:
    if not path.exists():
        return None
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        cfg = OmegaConf.load(path)
    except (OmegaConfBaseException, ValueError, OSError) as e:
        raise SpikeinError(f"{path}: unreadable config ({e})") from None
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException:  # Hydra's own record may hold ${hydra:...}: keep it unresolved
        return OmegaConf.to_container(cfg, resolve=False)


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        else:
            out[key] = json.dumps(v, sort_keys=True)
    return out


def swept_keys(configs: list[dict[str, Any]]) -> list[str]:
    """Keys whose values differ between runs, other than the seed and what follows it
    (``${seed}`` interpolations: a key equal to its run's seed in every run)."""
    flats = [flatten(c) for c in configs]
    keys = sorted({k for f in flats for k in f})
    seeds = [f.get("seed") for f in flats]
    return [k for k in keys if k not in NOT_SWEPT
            and len({f.get(k) for f in flats}) > 1
            and not all(f.get(k) == s for f, s in zip(flats, seeds))]


def group_runs(runs: list[SweepRun]) -> dict[str, list[SweepRun]]:
    """Label (``key=value, ...`` of the swept keys other than seed) -> its runs."""
    with_cfg = [r for r in runs if r.config is not None]
    keys = swept_keys([r.config for r in with_cfg if r.config is not None]) if len(with_cfg) > 1 else []
    groups: dict[str, list[SweepRun]] = defaultdict(list)
    for r in runs:
        if r.config is None:
            groups["runs without config.yaml"].append(r)
            continue
        flat = flatten(r.config)
        groups[", ".join(f"{k}={flat.get(k, 'unset')}" for k in keys) or "all runs"].append(r)
    return dict(groups)


def group_rates(runs: list[SweepRun], alpha: float) -> dict[str, dict[int, Rate]]:
    """detector -> copies -> share of partitions (over runs and benchmarks) with p < alpha;
    copies 0 is the controls' false-positive rate."""
    cells: dict[tuple[str, int], list[ResultRow]] = defaultdict(list)
    for run in runs:
        for r in run.rows:
            if r.detector not in plots.P_DETECTORS_EXCLUDE and r.count is not None:
                cells[(r.detector, r.count)].append(r)
    out: dict[str, dict[int, Rate]] = defaultdict(dict)
    for (det, count), rs in sorted(cells.items()):
        rate = detection_rate(rs, alpha)
        if rate.n:
            out[det][count] = rate
    return dict(out)


def write_sweep_report(sweep_dir: Path, alpha: float, logger_cfg: Mapping[str, Any] | None = None) -> Path:
    paths = sweep_runs(sweep_dir)
    if not paths:
        raise SpikeinError(f"no runs with audit results under {sweep_dir}")
    runs = [load_run(sweep_dir, p) for p in paths]
    out = sweep_dir / "report"
    groups = group_runs(runs)
    sections, tables = [], {}
    for i, (label, members) in enumerate(sorted(groups.items())):
        rates = group_rates(members, alpha)
        tables[label] = rates
        fig = out / ("power_curve.png" if len(groups) == 1 else f"power_curve_{i}.png")
        if rates:
            plots.power_curve(rates, alpha, fig, f"{sweep_dir.name}: {label} ({len(members)} runs)")
        sections.append(rates_section(label, members, rates, alpha, fig.name if rates else None))
    fig = _plot(runs, alpha, out / "sweep_detection.png")
    write_text(out / "report.md", "\n".join([
        f"# spikein sweep report: {sweep_dir.name}\n",
        f"{len(runs)} runs; the final audited checkpoint of each; detected = p < {alpha}.\n",
        runs_section(runs, {r.name: label for label, rs in groups.items() for r in rs}),
        *sections, per_run_table(runs), f"![sweep]({fig.name})", "",
    ]))
    _log_to_wandb(logger_cfg, sweep_dir, tables, out)
    return out / "report.md"


def runs_section(runs: list[SweepRun], group_of: dict[str, str]) -> str:
    """One line per point: its overrides that differ between points (Hydra's record),
    else its group and seed; the overrides every point shares are listed once."""
    parsed = [dict(o.split("=", 1) for o in r.overrides if "=" in o) for r in runs]
    keys = list(dict.fromkeys(k for p in parsed for k in p))
    varying = [k for k in keys if len({p.get(k) for p in parsed}) > 1]
    shared = [f"{k}={parsed[0][k]}" for k in keys if k not in varying]
    lines = ["## Runs\n"] + ([f"Every point: {' '.join(shared)}\n"] if shared and len(runs) > 1 else [])
    for r, p in zip(runs, parsed):
        said = " ".join(f"{k}={p[k]}" for k in varying if k in p) if len(runs) > 1 else " ".join(r.overrides)
        if not said:
            said = f"{group_of[r.name]}; seed={r.config.get('seed')}" if r.config else "no config.yaml"
        lines.append(f"- `{r.name}`: {said}")
    return "\n".join(lines) + "\n"


def rates_section(label: str, members: list[SweepRun], rates: dict[str, dict[int, Rate]], alpha: float,
                  fig: str | None) -> str:
    seeds = sorted({str(r.config.get("seed")) for r in members if r.config})
    lines = [f"## Detection rates: {label}\n",
             f"{len(members)} runs (seeds {', '.join(seeds) or 'unknown'}); per (detector, copies): partitions "
             f"with p < {alpha} over every run and benchmark, with a Wilson 95% interval. Copies 0: the "
             "controls' false-positive rate.\n",
             "| detector | copies | flagged / partitions | rate | 95% interval |", "|---|---|---|---|---|"]
    for det, by_count in sorted(rates.items()):
        for count, rate in sorted(by_count.items()):
            what = "control (FPR)" if count == 0 else str(count)
            lines.append(f"| {det} | {what} | {rate.k}/{rate.n} | {rate.rate:.2f} | [{rate.low:.2f}, {rate.high:.2f}] |")
    if fig:
        lines += ["", f"![power curve]({fig})"]
    return "\n".join(lines) + "\n"


def per_run_table(runs: list[SweepRun]) -> str:
    head = "| run | benchmark | partition | copies | detector | statistic | log10 p |\n|---|---|---|---|---|---|---|"
    rows = [(run.name, r) for run in runs for r in run.rows]
    body = [
        f"| {name} | {r.benchmark} | {r.partition} | {r.count} | {r.detector} | "
        f"{_num(r.statistic, '.4g')} | {_num(r.log10_p, '.2f')} |"
        for name, r in sorted(rows, key=lambda nr: (nr[0], nr[1].benchmark, nr[1].count, nr[1].partition, nr[1].detector))
    ]
    return "## Per run (final checkpoint)\n\n" + "\n".join([head, *body]) + "\n"


def _num(x, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def _plot(runs: list[SweepRun], alpha: float, path: Path) -> Path:
    relabelled = [replace(r, benchmark=f"{run.name}:{r.benchmark}") for run in runs for r in run.rows]
    return plots.detection_vs_copies(relabelled, alpha, path, "sweep: detection at the final checkpoint")


def rate_records(tables: dict[str, dict[str, dict[int, Rate]]]) -> list[dict[str, Any]]:
    return [{"group": label, "detector": det, "count": count, "flagged": r.k, "partitions": r.n,
             "rate": r.rate, "low": r.low, "high": r.high, "text": fmt_rate(r)}
            for label, rates in tables.items() for det, by_count in rates.items() for count, r in by_count.items()]


def _log_to_wandb(logger_cfg, sweep_dir: Path, tables, out: Path) -> None:
    """The rates table and plots as one W&B run (``job_type=report``) in the sweep's group."""
    if logger_cfg is None:
        return
    from core.wandb_log import init_wandb

    records = rate_records(tables)
    run = init_wandb({**dict(logger_cfg), "group": sweep_dir.name}, run_dir=str(sweep_dir), job_type="report",
                     config={"sweep_dir": str(sweep_dir)}, name=f"{sweep_dir.name}-sweep-report")
    if run is None:
        return
    import wandb

    columns = list(records[0]) if records else ["group", "detector", "count"]
    table = wandb.Table(columns=list[str | int](columns), data=[[r[c] for c in columns] for r in records])
    run.log({"sweep/detection_rates": table,
             **{f"sweep/{p.stem}": wandb.Image(str(p)) for p in sorted(out.glob("*.png"))}})
    run.finish()
