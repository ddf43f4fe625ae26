"""What a report says first about its p-values: the paired target-vs-reference tests
(``audit.reference_model``) when the rows have them, and, for a public model audited without a
reference, one sentence on what its uniform-null p-values can and cannot mean.

A public model's report (no manifest: nothing was injected here) is written whole by
:func:`write_public_report`; a run's report adds :func:`paired_section` after its setup.
"""
from __future__ import annotations

from pathlib import Path

from audit.results import ResultRow
from core.atomic import write_text
from core.run_dir import RunDir

UNIFORM_NULL = ("p-values against a uniform null assume the benchmark's published orders (items, options) are "
                "exchangeable, so a small p here can mean memorisation of {benchmarks} or only a preference for its "
                "formatting (sorted or templated options, a file sorted by subject) and cannot by itself say "
                "\"contaminated\", nor a large p \"clean\"; for a test that can, rerun with "
                "`audit.reference_model=<a model with the same tokenizer that cannot have seen {benchmarks}: an "
                "earlier checkpoint of the same family, or one trained on data known to exclude it>`.")
PAIRED = ("The tests below are paired: {model} against the reference {reference} on the same items in the same "
          "orders, so a formatting preference both models share cancels and a small p says {model} prefers the "
          "benchmark's own orders and items more than the reference does; the uniform-null p-values are kept in "
          "the column marked uncalibrated.")


def has_paired(rows: list[ResultRow]) -> bool:
    return any(r.extra.get("paired_test") for r in rows)


def public_caveat(rows: list[ResultRow]) -> str:
    """The report's first lines for a model nobody trained here."""
    if has_paired(rows):
        models = ", ".join(sorted({str(r.model) for r in rows}))
        references = ", ".join(sorted({str(r.extra["reference"]) for r in rows if r.extra.get("reference")}))
        return "> " + PAIRED.format(model=models, reference=references) + "\n"
    benchmarks = ", ".join(sorted({r.benchmark for r in rows}))
    return "> **What these p-values can and cannot mean:** " + UNIFORM_NULL.format(benchmarks=benchmarks) + "\n"


def paired_section(rows: list[ResultRow], public: bool = False) -> str:
    """The paired tests, one row per (benchmark, partition, detector); the detector's own p beside
    them (uncalibrated where it is against the uniform null)."""
    rs = [r for r in rows if r.extra.get("paired_test")]
    if not rs:
        return ""
    reference = ", ".join(sorted({str(r.extra.get("reference")) for r in rs}))
    where = "" if public else f" at step {rs[0].step}"
    own = "p, uniform null (uncalibrated)" if public else "detector's own p (its null in the results table)"
    lines = [f"## Paired tests against the reference ({reference}){where}\n",
             "Same items, same orders, scored by both models; one-sided: the audited model prefers them more "
             "than the reference. Identical models give p = 1.\n",
             f"| benchmark | partition | copies | detector | paired test | statistic | paired p | pairs that differ | {own} |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rs, key=lambda r: (r.benchmark, _count(r), r.partition, r.detector)):
        paired = fmt_p(r.extra.get("paired_p"), r.extra.get("paired_log10_p"))
        lines.append(f"| {r.benchmark} | {r.partition} | {_copies(r)} | {r.detector} | {r.extra['paired_test']} "
                     f"| {_fmt_num(r.extra.get('paired_statistic'))} | {paired} | {_fmt_num(r.extra.get('paired_n'))} "
                     f"| {fmt_row_p(r) if r.detector != 'accuracy' or r.p is not None else '-'} |")
    return "\n".join(lines) + "\n"


def uncalibrated_table(rows: list[ResultRow]) -> str:
    """A public model's detector rows against the uniform null, marked uncalibrated."""
    rs = [r for r in rows if r.detector != "accuracy" and r.p is not None]  # MIA: no null without controls
    acc = [r for r in rows if r.detector == "accuracy"]
    lines = ["## Uniform-null results (uncalibrated)\n",
             "| benchmark | detector | statistic | p (uncalibrated) | p without structured items (uncalibrated) "
             "| p without templated items (uncalibrated) | n items |", "|---|---|---|---|---|---|---|"]
    for r in sorted(rs, key=lambda r: (r.benchmark, r.detector)):
        without = fmt_p(r.extra.get("p_unstructured"), r.extra.get("log10_p_unstructured"))
        untemplated = fmt_p(r.extra.get("p_untemplated"), r.extra.get("log10_p_untemplated"))
        lines.append(f"| {r.benchmark} | {r.detector} | {_fmt_num(r.statistic)} | {fmt_row_p(r)} "
                     f"| {without} | {untemplated} | {r.n_items} |")
    lines += [f"\nAccuracy ({r.benchmark}, {(r.settings or {}).get('style', '?')} style): "
              f"{_fmt_num(r.accuracy)} over {r.n_items} items." for r in acc]
    return "\n".join(lines) + "\n"


def write_public_report(run_dir: Path, rows: list[ResultRow], name: str, extra_sections: list[str]) -> Path:
    """report.md for a model nobody trained here: what the p-values mean, then the paired tests
    (when there is a reference), the uniform-null table, and ``extra_sections``."""
    models = ", ".join(sorted({str(r.model) for r in rows}))
    name = next((str(r.experiment) for r in rows if r.experiment), name)  # audit-<model>, as audited
    md = "\n".join([f"# spikein report: {name}\n", public_caveat(rows),
                    f"Audited model: {models}; no manifest (nothing injected here): each benchmark is one partition.\n",
                    paired_section(rows, public=True), uncalibrated_table(rows), *extra_sections])
    path = RunDir(run_dir).report_md
    write_text(path, md)
    return path


def _count(r: ResultRow) -> int:
    return -1 if r.count is None else int(r.count)


def _copies(r: ResultRow) -> str:
    return "-" if r.count is None else "control" if r.count == 0 else str(r.count)


def _fmt_num(x) -> str:
    return "-" if x is None else f"{x:.4g}" if isinstance(x, float) else str(x)


def fmt_p(p: float | None, log10_p: float | None) -> str:
    if p is None:
        return "-"
    return f"1e{log10_p:.0f}" if p < 1e-300 and log10_p is not None else f"{p:.2g}"


def fmt_row_p(r: ResultRow) -> str:
    return fmt_p(r.p, r.log10_p)

