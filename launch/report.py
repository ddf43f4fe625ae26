"""`spikein report`: report/report.md + PNG plots a person can read without W&B."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from inject.atomic import write_text
from inject.errors import SpikeinError
from inject.manifest import Manifest, load_manifest
from launch import plots
from launch.results import audit_rows, checkpoint_index, final_rows, sustained_detection
from train.metrics import read_metrics


def run_report(cfg) -> int:
    sweep_dir = cfg.get("sweep_dir")
    if sweep_dir:
        from launch.sweep_report import write_sweep_report

        print(f"report: {write_sweep_report(Path(sweep_dir), float(cfg.report.alpha))}")
        return 0
    path = write_report(Path(cfg.run_dir), float(cfg.report.alpha), cfg.experiment_name)
    print(f"report: {path}")
    _log_to_wandb(cfg, path.parent)
    return 0


def write_report(run_dir: Path, alpha: float, name: str) -> Path:
    rows = audit_rows(run_dir)
    if not rows:
        raise SpikeinError(f"no audit results in {run_dir / 'audit/results.jsonl'}: run `spikein audit` first")
    manifest = load_manifest(run_dir)
    out = run_dir / "report"
    last = final_rows(rows)
    figs = [
        plots.detection_vs_copies(last, alpha, out / "detection_vs_copies.png", f"{name}: detection at step {last[0]['step']}"),
        plots.accuracy_vs_copies(last, out / "accuracy_vs_copies.png", f"{name}: accuracy at step {last[0]['step']}"),
    ]
    for det in sorted({r["detector"] for r in rows} - {"accuracy"}):
        figs.append(plots.detection_vs_step(rows, det, alpha, out / f"{det}_vs_step.png", f"{name}: {det} over training"))
    md = "\n".join([
        f"# spikein report: {name}\n",
        setup_section(run_dir, manifest),
        verdict_section(rows, manifest, alpha),
        results_table(last),
        "## Plots\n",
        *[f"![{f.stem}]({f.name})\n" for f in figs],
        READING_GUIDE.format(alpha=alpha),
    ])
    write_text(out / "report.md", md)
    return out / "report.md"


def setup_section(run_dir: Path, m: Manifest) -> str:
    index = checkpoint_index(run_dir)
    metrics = read_metrics(run_dir)
    ckpts = index.get("checkpoints", [])
    tokens = ckpts[-1]["tokens_seen"] if ckpts else 0
    lines = ["## Setup\n",
             f"- stream: {m.n_tokens:,} tokens, {m.n_documents:,} documents; copies: {len(m.copies)} "
             f"({m.injected_tokens:,} tokens, {m.injected_tokens / max(m.n_tokens, 1):.2%} of the stream)",
             f"- trained: {tokens:,} tokens ({tokens / max(m.n_tokens, 1):.2f} epochs) over {len(ckpts)} audited checkpoints"
             + (f"; final loss {metrics[-1].get('loss', float('nan')):.3f}" if metrics else "")]
    if tokens > m.n_tokens:
        lines.append("- more than one epoch: every copy was seen once per epoch, so exposures multiply (see copies_seen)")
    for b in m.benchmarks:
        parts = [p for p in m.partitions if p.benchmark == b.name]
        desc = ", ".join(f"{p.name}: {p.n_items} items x {p.count}" for p in parts)
        lines.append(f"- {b.name}: renderer `{b.renderer}`, mode `{b.mode}`, window {list(b.window)}; {desc}")
    return "\n".join(lines) + "\n"


def verdict_section(rows: list[dict[str, Any]], m: Manifest, alpha: float) -> str:
    found = sustained_detection(rows, alpha)
    detectors = sorted({r["detector"] for r in rows if r.get("p") is not None and r["detector"] != "accuracy"})
    lines = [f"## Verdict (p < {alpha} at the last checkpoint, and at every one since the step named)\n"]
    for p in m.partitions:
        hits = [(d, found[(p.benchmark, p.name, d)]) for d in detectors if (p.benchmark, p.name, d) in found]
        what = f"{p.benchmark}/{p.name} ({p.count} copies)" if p.count else f"{p.benchmark}/{p.name} (control)"
        if not hits:
            verdict = "not flagged, as it should be" if p.count == 0 else "not detected"
        else:
            said = "; ".join(f"{d} from step {r['step']} (final p = {_fmt_p({'p': r['final_p'], 'log10_p': r['final_log10_p']})})"
                             for d, r in hits)
            verdict = ("FLAGGED (false positive): " if p.count == 0 else "detected by ") + said
        lines.append(f"- {what}: {verdict}{_accuracy_note(rows, p)}")
    return "\n".join(lines) + "\n"


def _accuracy_note(rows: list[dict[str, Any]], part) -> str:
    """Final accuracy and its inflation over the same benchmark's controls."""
    acc = {r["partition"]: r.get("accuracy", r["statistic"]) for r in final_rows(rows)
           if r["detector"] == "accuracy" and r["benchmark"] == part.benchmark}
    controls = [acc[r["partition"]] for r in final_rows(rows) if r["detector"] == "accuracy"
                and r["benchmark"] == part.benchmark and r["count"] == 0 and r["partition"] in acc]
    if part.name not in acc:
        return ""
    if part.count == 0 or not controls:
        return f"; accuracy {acc[part.name]:.2f}"
    return f"; accuracy {acc[part.name]:.2f} ({acc[part.name] - sum(controls) / len(controls):+.2f} vs controls)"


def results_table(last: list[dict[str, Any]]) -> str:
    head = "| benchmark | partition | copies | copies seen | detector | statistic | p | n items |\n|---|---|---|---|---|---|---|---|"
    body = [
        f"| {r['benchmark']} | {r['partition']} | {r['count']} | {r.get('copies_seen', '')} | {r['detector']} "
        f"| {_fmt_num(r.get('statistic'))} | {_fmt_p(r)} | {r['n_items']} |"
        for r in sorted(last, key=lambda r: (r["benchmark"], r["count"], r["partition"], r["detector"]))
    ]
    return f"## Results at step {last[0]['step']}\n\n" + "\n".join([head, *body]) + "\n"


def _fmt_num(x) -> str:
    return "-" if x is None else f"{x:.4g}"


def _fmt_p(r: dict[str, Any]) -> str:
    if r.get("p") is None:
        return "-"
    lp = r.get("log10_p")
    if lp is not None and lp < -300:
        return f"1e{lp:.0f}"
    return f"{r['p']:.2g}" if r["p"] >= 1e-300 else f"1e{lp:.0f}"


READING_GUIDE = """## How to read this

- **ordering** (Oren et al. 2023): does the model prefer the benchmark's published item order
  over random orders? Only verbatim memorisation of a whole document-mode copy creates that preference.
- **option_shuffle** (Ni et al. 2024): does the model prefer the original option order of each item?
  p is calibrated against the control partitions of the same benchmark (a rank test).
- **accuracy**: zero-shot accuracy per partition; inflation = accuracy(copies) - accuracy(controls).
- A partition is *detected* when p < {alpha} (red dashed line). Controls were never injected: a
  flagged control is a false positive and means the detector is miscalibrated at this scale.
"""


def _log_to_wandb(cfg, out: Path) -> None:
    from omegaconf import OmegaConf

    from inject.wandb_log import init_wandb

    run = init_wandb(cfg.logger, run_dir=str(cfg.run_dir), job_type="report",
                     config=OmegaConf.to_container(cfg, resolve=True), name=f"{cfg.experiment_name}-report")
    if not run.active:
        return
    import wandb

    run.log({p.stem: wandb.Image(str(p)) for p in sorted(out.glob("*.png"))})
    run.finish()
