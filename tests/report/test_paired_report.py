"""The report's lead: a public audit without a reference says what its p-values can and cannot mean
in its first lines; with a reference the paired tests come first and the uniform-null p-values sit
in a column marked uncalibrated; a run's report puts its paired tests right after the setup."""
from __future__ import annotations

import math

from report_fixtures import write_index, write_manifest, write_rows

from audit.results import ROW_FIELDS, ResultsStore
from core.run_dir import RunDir
from report.report import write_report

STEPS = (0, 50, 100)


def public_rows(paired: bool) -> list[dict]:
    rows = []
    for det, p in (("option_shuffle", 3.4e-13), ("ordering", 0.42), ("accuracy", None)):
        row = dict(experiment="audit-m", model="/models/m", step=None, tokens_seen=None, benchmark="mmlu",
                   partition="all", count=None, copies_seen=None, detector=det, statistic=0.3, p=p,
                   log10_p=None if p is None else math.log10(p), n_items=40, settings={"renderer": "mcq"})
        if det == "option_shuffle":
            row.update(null="uniform", calibrated=False, structured_items=30, templated_items=20,
                       p_unstructured=2e-3, log10_p_unstructured=math.log10(2e-3),
                       p_untemplated=0.04, log10_p_untemplated=math.log10(0.04),
                       structure={"length_sorted": 8, "template": 20})
        if det == "accuracy":
            row.update(accuracy=0.3, settings={"renderer": "mcq", "style": "letter"})
        if paired:
            row.update(reference="/models/old", paired_test=f"{det} paired", paired_statistic=0.0, paired_p=0.61,
                       paired_log10_p=math.log10(0.61), paired_n=12)
        rows.append(row)
    return rows


def write_public(run, rows):
    store = ResultsStore(RunDir(run))
    for row in rows:
        store.add({**{k: row.get(k) for k in ROW_FIELDS}, **row})


def test_public_audit_without_reference_says_what_its_p_values_mean_first(tmp_path):
    write_public(tmp_path, public_rows(paired=False))
    md = write_report(tmp_path, 0.01, "audit-m").read_text()
    first = md.splitlines()[2]  # after the title and a blank line
    assert first.startswith("> **What these p-values can and cannot mean:**") and "audit.reference_model=" in first
    assert "cannot by itself say \"contaminated\"" in first and first.count(". ") <= 1  # one sentence
    assert "## Paired tests" not in md
    table = md.split("## Uniform-null results (uncalibrated)")[1]
    assert "| mmlu | option_shuffle | 0.3 | 3.4e-13 | 0.002 | 0.04 | 40 |" in table
    assert "## Option orders with structure" in md


def test_public_audit_with_reference_leads_with_the_paired_tests(tmp_path):
    write_public(tmp_path, public_rows(paired=True))
    md = write_report(tmp_path, 0.01, "audit-m").read_text()
    assert md.splitlines()[2].startswith("> The tests below are paired: /models/m against the reference /models/old")
    paired = md.index("## Paired tests against the reference (/models/old)")
    assert paired < md.index("## Uniform-null results (uncalibrated)")
    assert "| paired p | pairs that differ | p, uniform null (uncalibrated) |" in md
    assert "| mmlu | all | - | option_shuffle | option_shuffle paired | 0 | 0.61 | 12 | 3.4e-13 |" in md


def test_run_report_puts_paired_tests_after_the_setup(tmp_path):
    m = write_manifest(tmp_path, (0, 16), ("b",), copies_end=4000)
    write_index(tmp_path, STEPS)
    p = lambda b, part, c, d, s: 1e-4 if c else 0.5  # noqa: E731
    paired = lambda part, det, step: {"reference": "step_0", "paired_test": "signed-rank", "paired_statistic": 3.0,  # noqa: E731
                                      "paired_p": 2e-3 if part.count else 0.7, "paired_n": 10}
    write_rows(tmp_path, m, p, STEPS, ("ordering",), extra=paired)
    md = write_report(tmp_path, 0.01, "t").read_text()
    at = md.index(f"## Paired tests against the reference (step_0) at step {STEPS[-1]}")
    assert md.index("## Setup") < at < md.index("## Verdict")
    assert "| b | x16 | 16 | ordering | signed-rank | 3 | 0.002 | 10 | 0.0001 |" in md
    assert "| b | x0 | control | ordering | signed-rank | 3 | 0.7 | 10 | 0.5 |" in md
