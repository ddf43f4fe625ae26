"""`spikein report`: report/report.md + PNG plots a person can read without W&B."""
from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from audit.results import ResultRow, read_null_check_rows
from core.atomic import write_text
from core.checkpoint_index import CheckpointIndex
from core.config import SpikeinConfig
from core.errors import SpikeinError
from core.run_dir import RunDir
from core.stage_state import StageState
from inject.manifest import Manifest, load_manifest
from report import plots
from report.corpus_scan_table import corpus_scan_section, flag_verdicts, mark_found, read_scan, wandb_counts
from report.null_check_report import null_check_section
from report.paired_report import paired_section, write_public_report
from report.rates import detection_rate, fisher_log10_p, flagged, fmt_rate, row_log10_p
from report.results import (
    audit_rows,
    checkpoint_index,
    current_settings,
    detected_since_exposure,
    final_rows,
    first_exposure_steps,
    last_exposure_steps,
    settings_key,
    smallest_count,
    split_by_settings,
    sustained_detection,
)
from train.metrics import read_metrics


def run_report(cfg: SpikeinConfig) -> int:
    sweep_dir = cfg.sweep_dir
    if sweep_dir:
        from report.sweep_report import write_sweep_report

        print(f"report: {write_sweep_report(Path(sweep_dir), cfg.report.alpha, dataclasses.asdict(cfg.logger))}")
        return 0
    rd = RunDir(cfg.run_dir)
    current = current_settings(cfg, load_manifest(rd.root)) if rd.manifest.exists() else None
    if cfg.dry_run:
        print(f"report: dry run, would {stage_plan(cfg)}")
        return 0
    path = write_report(rd.root, cfg.report.alpha, cfg.experiment_name, current)
    print(f"report: {path}")
    _log_to_wandb(cfg, path.parent, current)
    return 0


def stage_state(cfg: SpikeinConfig) -> StageState:
    """done once report.md is at least as new as the audit rows it is made from (reads only);
    a report older than the rows counts as absent: nothing of it is kept."""
    rd = RunDir(cfg.run_dir)
    if not rd.report_md.exists():
        return StageState("report", "absent", f"no {rd.report_md}")
    for source in (rd.results, rd.null_check):  # the audit's rows and the null check's
        if source.exists() and source.stat().st_mtime_ns > rd.report_md.stat().st_mtime_ns:
            return StageState("report", "absent", f"{rd.report_md} is older than {source}")
    return StageState("report", "done", f"{rd.report_md} written from the current audit rows")


def stage_plan(cfg: SpikeinConfig) -> str:
    rd = RunDir(cfg.run_dir)
    rows = len(audit_rows(rd.root))
    source = f"{rows} audit rows" if rows else "the audit's rows"
    return f"write {rd.report_md} and plots from {source} (rewritten on every run)"


def write_report(run_dir: Path, alpha: float, name: str, current: dict[tuple[str, str], str] | None = None) -> Path:
    """``current``: (benchmark, detector) -> the settings the config audits with (rows
    scored otherwise are reported apart, never in the same table or verdict)."""
    all_rows = audit_rows(run_dir)
    if not all_rows:
        raise SpikeinError(f"no audit results in {RunDir(run_dir).results}: run `spikein audit` first")
    rows, other = split_by_settings(all_rows, current)
    if not RunDir(run_dir).manifest.exists():  # a public model's audit: nothing was injected here
        return write_public_report(run_dir, rows, name, [
            structure_section(rows), descriptive_rates_section(rows), settings_section(rows)])
    manifest = load_manifest(run_dir)
    out = RunDir(run_dir).report
    last = final_rows(rows)
    figs = [
        plots.detection_vs_copies(last, alpha, out / "detection_vs_copies.png", f"{name}: detection at step {last[0].step}"),
        plots.accuracy_vs_copies(last, out / "accuracy_vs_copies.png", f"{name}: accuracy at step {last[0].step}"),
    ]
    for det in p_detectors(rows):
        figs.append(plots.detection_vs_step(rows, det, alpha, out / f"{det}_vs_step.png", f"{name}: {det} over training"))
    series = forgetting_series(rows, manifest, checkpoint_index(run_dir))
    if series:
        figs.append(plots.forgetting(series, alpha, out / "forgetting.png", f"{name}: after the last exposure"))
    scan = read_scan(run_dir)
    marked = mark_found(last, scan)  # partitions with items in the corpus, named so in every table of rows
    md = "\n".join([
        f"# spikein report: {name}\n",
        setup_section(run_dir, manifest, rows),
        paired_section(last),
        corpus_scan_section(scan),
        settings_section(rows),
        flag_verdicts(verdict_section(rows, manifest, alpha, first_exposure_steps(manifest, checkpoint_index(run_dir))),
                      scan),
        comparison_section(rows, alpha),
        null_check_section(read_null_check_rows(RunDir(run_dir)), rows, alpha),
        results_table(marked),
        descriptive_rates_section(marked),
        structure_section(marked),
        other_settings_section(rows, other),
        "## Plots\n",
        *[f"![{f.stem}]({f.name})\n" for f in figs],
        READING_GUIDE.format(alpha=alpha),
    ])
    write_text(RunDir(run_dir).report_md, md)
    return RunDir(run_dir).report_md


def p_detectors(rows: list[ResultRow]) -> list[str]:
    """Detectors whose rows are tests with a p (any registered one; accuracy is reported as accuracy)."""
    return sorted({r.detector for r in rows if r.p is not None} - plots.P_DETECTORS_EXCLUDE)


def setup_section(run_dir: Path, m: Manifest, rows: list[ResultRow]) -> str:
    index = checkpoint_index(run_dir)
    metrics = read_metrics(run_dir)
    ckpts = index.checkpoints
    tokens = (ckpts[-1].tokens_seen or 0) if ckpts else 0
    lines = ["## Setup\n",
             f"- stream: {m.n_tokens:,} tokens, {m.n_documents:,} documents; copies: {len(m.copies)} "
             f"({m.injected_tokens:,} tokens, {m.injected_tokens / max(m.n_tokens, 1):.2%} of the stream)",
             f"- trained: {tokens:,} tokens ({tokens / max(m.n_tokens, 1):.2f} epochs), {len(ckpts)} checkpoints saved"
             + (f"; final loss {metrics[-1].get('loss', float('nan')):.3f}" if metrics else ""),
             audited_line(rows)]
    if tokens > m.n_tokens:
        lines.append("- more than one epoch: every copy was seen once per epoch, so exposures multiply (see copies_seen)")
    for b in m.benchmarks:
        parts = [p for p in m.partitions if p.benchmark == b.name]
        desc = ", ".join(f"{p.name}: {p.n_items} items x {p.count}" for p in parts)
        lines.append(f"- {b.name}: renderer `{b.renderer}`, mode `{b.mode}`, window {list(b.window)}; {desc}")
    return "\n".join(lines) + "\n"


def audited_line(rows: list[ResultRow]) -> str:
    """The checkpoints the tables below were actually computed on (not the ones saved)."""
    steps = sorted({r.step for r in rows if r.step is not None})
    shown = ", ".join(map(str, steps)) if len(steps) <= 12 else f"{steps[0]}, {steps[1]}, ..., {steps[-1]}"
    return f"- audited: {len(steps)} checkpoint{'s' if len(steps) != 1 else ''} (steps {shown})"


def _settings_text(settings: Any) -> str:
    if not isinstance(settings, dict) or not settings:
        return "not recorded"
    return ", ".join(f"{k}={json.dumps(v) if isinstance(v, (list, dict)) else v}" for k, v in sorted(settings.items()))


def settings_section(rows: list[ResultRow]) -> str:
    """The settings behind every number below, once per detector (per benchmark where they differ)."""
    by_det: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        benches = by_det[r.detector][settings_key(r)]
        if r.benchmark not in benches:
            benches.append(r.benchmark)
    lines = ["## Settings (the tables below use only rows scored with these)\n"]
    for det, variants in sorted(by_det.items()):
        for key, benches in variants.items():
            where = f" ({', '.join(benches)})" if len(variants) > 1 else ""
            lines.append(f"- {det}{where}: {_settings_text(json.loads(key))}")
    return "\n".join(lines) + "\n"


def verdict_section(rows: list[ResultRow], m: Manifest, alpha: float,
                    first_copy: dict[tuple[str, str], int] | None = None) -> str:
    """Per partition: the detectors whose p stayed below alpha from a step on. A run of p < alpha
    that starts before any copy was trained on predates the copies: said so, never a detection.
    ``first_copy``: (benchmark, partition) -> the first step that trained on a whole copy."""
    found = sustained_detection(rows, alpha)
    detectors = p_detectors(rows)
    lines = [f"## Verdict (p < {alpha} at the last checkpoint, and at every one since the step named)\n"]
    for p in m.partitions:
        hits = [(d, found[(p.benchmark, p.name, d)]) for d in detectors if (p.benchmark, p.name, d) in found]
        what = f"{p.benchmark}/{p.name} ({p.count} copies)" if p.count else f"{p.benchmark}/{p.name} (control)"
        early = [(d, r) for d, r in hits if p.count and r.since.copies_seen == 0]
        hits = [h for h in hits if h not in early]
        if hits:
            said = "; ".join(f"{d} from step {r.since.step} (final p = {_fmt_row_p(r.final)})" for d, r in hits)
            verdict = ("FLAGGED (false positive): " if p.count == 0 else "detected by ") + said
        else:
            verdict = "not flagged, as it should be" if p.count == 0 else "not detected"
        if early:
            landed = (first_copy or {}).get((p.benchmark, p.name))
            when = f"; first copy trained on by step {landed}" if landed else ""
            verdict += (f"; p < {alpha} already before exposure, not counted as a detection (the partition stood "
                        f"out where no copy had been trained on{when}): "
                        + "; ".join(f"{d} from step {r.since.step} (final p = {_fmt_row_p(r.final)})" for d, r in early))
        lines.append(f"- {what}: {verdict}{_accuracy_note(rows, p)}")
    return "\n".join(lines) + "\n"


def _accuracy_note(rows: list[ResultRow], part) -> str:
    """Final accuracy and its inflation over the same benchmark's controls."""
    acc = {r.partition: r.accuracy for r in final_rows(rows)
           if r.detector == "accuracy" and r.benchmark == part.benchmark and r.accuracy is not None}
    controls = [acc[r.partition] for r in final_rows(rows) if r.detector == "accuracy"
                and r.benchmark == part.benchmark and r.count == 0 and r.partition in acc]
    if part.name not in acc:
        return ""
    if part.count == 0 or not controls:
        return f"; accuracy {acc[part.name]:.2f}"
    return f"; accuracy {acc[part.name]:.2f} ({acc[part.name] - sum(controls) / len(controls):+.2f} vs controls)"


def comparison_rows(rows: list[ResultRow], alpha: float) -> list[dict[str, Any]]:
    """Per (count, detector) at the last checkpoint: Fisher-combined p over every partition
    of that count (all benchmarks; p combined from log10 p, so it survives underflow),
    the partitions flagged, and the mean AUROC where the rows have one."""
    cells: dict[tuple[int, str], list[ResultRow]] = defaultdict(list)
    for r in final_rows(rows):
        if r.detector not in plots.P_DETECTORS_EXCLUDE and row_log10_p(r) is not None and r.count is not None:
            cells[(r.count, r.detector)].append(r)
    out = []
    for (count, det), rs in sorted(cells.items()):
        aurocs = [float(r.extra["auroc"]) for r in rs if r.extra.get("auroc") is not None]
        out.append({"count": count, "detector": det, "n_partitions": len(rs),
                    "log10_p_fisher": fisher_log10_p(lp for lp in map(row_log10_p, rs) if lp is not None),
                    "flagged": sum(flagged(r, alpha) for r in rs),
                    "auroc": sum(aurocs) / len(aurocs) if aurocs else None})
    return out


def comparison_section(rows: list[ResultRow], alpha: float) -> str:
    cmp = comparison_rows(rows, alpha)
    if not cmp:
        return ""
    dets = sorted({c["detector"] for c in cmp})
    cell = {(c["count"], c["detector"]): c for c in cmp}
    counts = sorted({c["count"] for c in cmp})
    lines = [f"## Detector comparison at step {final_rows(rows)[0].step}\n",
             "Per count: the p-value combined over its partitions of every benchmark (Fisher; partitions that "
             "share controls are not fully independent), partitions with p < alpha, and AUROC against the "
             "controls where the detector has one.\n",
             "| copies | " + " | ".join(dets) + " |", "|---|" + "---|" * len(dets)]
    for count in counts:
        lines.append(f"| {'control' if count == 0 else count} | "
                     + " | ".join(_cmp_cell(cell.get((count, d))) for d in dets) + " |")
    at_last = {(r.benchmark, r.partition, r.detector): flagged(r, alpha)
               for r in final_rows(rows) if r.count and row_log10_p(r) is not None}
    since = detected_since_exposure(rows, alpha)
    counts_of = {(r.benchmark, r.partition): r.count for r in rows if r.count is not None}
    lines.append("| smallest count detected at the last checkpoint | "
                 + " | ".join(_count_or_none(smallest_count(at_last, counts_of, d)) for d in dets) + " |")
    lines.append("| smallest count detected at every checkpoint since exposure | "
                 + " | ".join(_count_or_none(smallest_count(since, counts_of, d)) for d in dets) + " |")
    lines.append("\nA count is *detected* when every partition with that many copies has p < "
                 f"{alpha}; *since exposure*: at every audited checkpoint from the first that had trained on all "
                 "of its copies. Controls flagged at the last checkpoint (pooled over benchmarks): "
                 + "; ".join(f"{d} {fmt_rate(detection_rate(_controls(rows, d), alpha))}" for d in dets) + ".\n")
    return "\n".join(lines) + "\n"


def _controls(rows: list[ResultRow], det: str) -> list[ResultRow]:
    return [r for r in final_rows(rows) if r.detector == det and r.count == 0]


def _cmp_cell(c: dict[str, Any] | None) -> str:
    if c is None:
        return "-"
    text = f"{_fmt_p(10 ** c['log10_p_fisher'], c['log10_p_fisher'])} ({c['flagged']}/{c['n_partitions']})"
    return text + (f", AUROC {c['auroc']:.2f}" if c["auroc"] is not None else "")


def _count_or_none(c: int | None) -> str:
    return "none" if c is None else str(c)


def basis(r: ResultRow) -> str:
    """What the number depends on beyond the model: the accuracy style, the null and its calibration."""
    parts = []
    style = (r.settings or {}).get("style")
    if style:
        parts.append(f"{style} style")
    if r.extra.get("null"):
        calibrated = r.extra.get("calibrated")
        label = "" if calibrated is None else " (calibrated)" if calibrated else " (uncalibrated)"
        parts.append(r.extra["null"] + (" (exact)" if r.extra.get("null_exact") else label))
    return ", ".join(parts) or "-"


def results_table(last: list[ResultRow], title: str | None = None, level: str = "##") -> str:
    head = ("| benchmark | partition | copies | copies seen | detector | basis | statistic | p | n items |\n"
            "|---|---|---|---|---|---|---|---|---|")
    body = [
        f"| {r.benchmark} | {r.partition} | {r.count} | {'' if r.copies_seen is None else r.copies_seen} | {r.detector} "
        f"| {basis(r)} | {_fmt_num(r.statistic)} | {_fmt_row_p(r)} | {r.n_items} |"
        for r in sorted(last, key=lambda r: (r.benchmark, r.count, r.partition, r.detector))
    ]
    return f"{level} {title or 'Results at step ' + str(last[0].step)}\n\n" + "\n".join([head, *body]) + "\n"


def descriptive_rates_section(last: list[ResultRow]) -> str:
    """Ni et al.'s scenario a/b rates: descriptive, never a detection."""
    rs = [r for r in last if r.detector == "option_shuffle" and (r.extra.get("rate_a") is not None or r.extra.get("rate_b"))]
    if not rs:
        return ""
    deltas = sorted({d for r in rs for d in (r.extra.get("rate_b") or {})}, key=float)
    head = ("| benchmark | partition | copies | rate a | chance | " + " | ".join(f"rate b (delta {d})" for d in deltas)
            + " |\n|---|---|---|---|---|" + "---|" * len(deltas))
    body = [f"| {r.benchmark} | {r.partition} | {r.count} | {_fmt_num(r.extra.get('rate_a'))} | "
            f"{_fmt_num(r.extra.get('chance_rate_a'))} | " + " | ".join(_fmt_num((r.extra.get("rate_b") or {}).get(d)) for d in deltas)
            + " |" for r in sorted(rs, key=lambda r: (r.benchmark, r.count, r.partition))]
    return "\n".join([
        "## Option shuffle: the paper's descriptive rates (not a detection)\n",
        "Scenario a: the share of items whose original option order scores highest, ties included as in the "
        "paper's code (chance: about 1 / orders). "
        "Scenario b: the share whose best order is an IsolationForest outlier at threshold delta (Ni et al.). "
        "These rates have no null distribution: scenario b flags 17-53% of the items of a clean public model, "
        "in spikein and in Ni et al.'s code alike. They are reported as the paper's descriptive rates and never "
        "count as a detection; the verdict uses the option-shuffle p-value only.\n",
        head, *body, ""])


def structure_section(last: list[ResultRow]) -> str:
    """Option-shuffle partitions whose published option orders have structure (sorted by
    length or number, "all/none of the above"): the p-value with and without those items."""
    rs = [r for r in last if r.detector == "option_shuffle" and r.extra.get("structured_items")]
    if not rs:
        return ""
    lines = ["## Option orders with structure\n",
             "The option-shuffle null assumes the published option order is exchangeable; these items' orders "
             "are not (their p-value without them beside it).\n",
             "| benchmark | partition | copies | structured items | which | p | p without them |", "|---|---|---|---|---|---|---|"]
    for r in sorted(rs, key=lambda r: (r.benchmark, r.count, r.partition)):
        which = ", ".join(f"{k} {n}" for k, n in (r.extra.get("structure") or {}).items() if n) or "-"
        without = _fmt_p(r.extra.get("p_unstructured"), r.extra.get("log10_p_unstructured"))
        lines.append(f"| {r.benchmark} | {r.partition} | {r.count} | {r.extra['structured_items']}/{r.n_items} "
                     f"| {which} | {_fmt_row_p(r)} | {without} |")
    return "\n".join(lines) + "\n"


def other_settings_section(rows: list[ResultRow], other: list[ResultRow]) -> str:
    """Rows scored with settings other than the reported ones, each variant in its own table."""
    if not other:
        return ""
    reported = {(r.benchmark, r.detector): r.settings or {} for r in rows}
    variants: dict[tuple[str, str], list[ResultRow]] = defaultdict(list)
    for r in other:
        variants[(r.detector, settings_key(r))].append(r)
    out = ["## Rows scored with other settings (not in the verdict or the tables above)\n"]
    for (det, key), rs in sorted(variants.items()):
        mine, theirs = json.loads(key) or {}, reported.get((rs[0].benchmark, det), {})
        diff = ", ".join(f"{k}={mine.get(k)} (reported: {theirs.get(k)})"
                         for k in sorted(set(mine) | set(theirs)) if mine.get(k) != theirs.get(k))
        out.append(results_table(final_rows(rs), f"{det} with {diff or 'unrecorded settings'}", "###"))
    return "\n".join(out)


def forgetting_series(rows: list[ResultRow], m: Manifest, index: CheckpointIndex) -> dict[str, list[tuple[int, float]]]:
    """label -> (steps since the partition's last exposure, log10 p or accuracy), for
    checkpoints at or after it; only partitions with two such checkpoints or more."""
    last = last_exposure_steps(m, index)
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for r in rows:
        when = last.get((r.benchmark, r.partition))
        if when is None or r.step is None or r.step < when:
            continue
        where = f"{r.benchmark}/{r.partition} (x{r.count})"
        lp = row_log10_p(r)
        if r.detector == "accuracy" and r.accuracy is not None:
            series[f"accuracy {where}"].append((r.step - when, r.accuracy))
        elif r.detector != "accuracy" and lp is not None:
            series[f"{r.detector} {where}"].append((r.step - when, lp))
    return {k: v for k, v in series.items() if len(v) >= 2}


def _fmt_num(x) -> str:
    return "-" if x is None else f"{x:.4g}"


def _fmt_p(p: float | None, lp: float | None) -> str:
    if p is None:
        return "-"
    if lp is not None and lp < -300:
        return f"1e{lp:.0f}"
    return f"{p:.2g}" if p >= 1e-300 else f"1e{lp:.0f}"


def _fmt_row_p(r: ResultRow) -> str:
    return _fmt_p(r.p, r.log10_p)


READING_GUIDE = """## How to read this

- **ordering** (Oren et al. 2023): does the model prefer the benchmark's published item order
  over random orders? Only verbatim memorisation of a whole document-mode copy creates that preference.
- **option_shuffle** (Ni et al. 2024): does the model prefer the original option order of each item?
  p is a rank test against the control partitions of the same benchmark (calibrated), or against
  uniform ranks where there are no other controls: exact when the run injected seeded random option
  orders (`inject.option_order=shuffled`), else uncalibrated; the *basis* column says which.
- Any other detector (membership-inference scores, the successor test, ...) appears in every table
  and plot by its registered name; its *basis* column names the null it was tested against.
- **accuracy**: zero-shot accuracy per partition (its style in the basis column); inflation =
  accuracy(copies) - accuracy(controls).
- A partition is *detected* when p < {alpha} (red dashed line). Controls were never injected: a
  flagged control is a false positive and means the detector is miscalibrated at this scale.
  Several controls per benchmark (repeat 0 in `inject.counts`: partitions x0, x0_1, ...) pool into
  the false-positive rate.
- *forgetting.png* (when at least two audited checkpoints follow a partition's last exposure):
  log10 p and accuracy against steps since that exposure.
"""


def _log_to_wandb(cfg: SpikeinConfig, out: Path, current: dict[tuple[str, str], str] | None) -> None:

    from core.wandb_log import init_wandb

    run = init_wandb(cfg.logger, run_dir=cfg.run_dir, job_type="report",
                     config=dataclasses.asdict(cfg), name=f"{cfg.experiment_name}-report")
    if not run.active:
        return
    import wandb

    rows = split_by_settings(audit_rows(Path(cfg.run_dir)), current)[0]
    cmp = comparison_rows(rows, cfg.report.alpha)
    columns = list(cmp[0]) if cmp else ["count", "detector"]
    table = wandb.Table(columns=list[str | int](columns), data=[[c[k] for k in columns] for c in cmp])
    run.log({"report/detector_comparison": table,
             **{f"report/{p.stem}": wandb.Image(str(p)) for p in sorted(out.glob("*.png"))},
             **wandb_counts(read_scan(Path(cfg.run_dir)))})
    run.finish()
