"""Issue 22 in the report: verdicts that know when copies landed, the null-check section,
and plots with one colour per detector and one line style per benchmark."""
from __future__ import annotations

import math

from report_fixtures import write_index, write_manifest, write_rows  # noqa: E402

from audit.null_check import null_check_path
from audit.results import ResultRow
from core.atomic import append_jsonl
from report import plots
from report.report import write_report

STEPS = (20, 50, 100)  # copies end by token 4000: the first whole copy by step 39, all by step 40


def early_and_late(b, part, c, d, s):
    """loss flags x16 from step 20 (before exposure); ordering only once the copies landed."""
    if d == "loss":
        return 1e-3 if c else None
    return 1e-5 if c == 16 and s >= 50 else 0.5


def test_a_run_of_p_below_alpha_that_starts_before_exposure_is_not_a_detection(tmp_path):
    m = write_manifest(tmp_path, (0, 16), ("b",), copies_end=4000)
    write_index(tmp_path, STEPS)
    write_rows(tmp_path, m, early_and_late, STEPS, ("ordering", "loss"))
    md = write_report(tmp_path, 0.01, "t").read_text()
    line = next(x for x in md.splitlines() if x.startswith("- b/x16"))
    assert line.startswith("- b/x16 (16 copies): detected by ordering from step 50 (final p = 1e-05)")
    assert "already before exposure, not counted as a detection" in line and "first copy trained on by step 39" in line
    assert "loss from step 20" in line and "detected by loss" not in line


def test_report_sets_each_control_beside_its_fresh_draws(tmp_path):
    m = write_manifest(tmp_path, (0, 0, 16), ("b",), copies_end=4000)
    write_index(tmp_path, STEPS)
    p = {"x0": 0.002, "x0_1": 0.4}
    write_rows(tmp_path, m, lambda b, part, c, d, s: 1e-6 if c else p[part], STEPS, ("option_shuffle",))
    for part in ("x0", "x0_1"):
        append_jsonl(null_check_path(tmp_path), dict(
            experiment="t", model="step_100", step=100, benchmark="b", partition=part, count=0,
            detector="option_shuffle", settings={}, draws=4, seed=1, fresh_log10_p=[-0.1, -0.5, -1.5, -0.3]))
    md = write_report(tmp_path, 0.01, "t").read_text()
    section = md.split("## Null check")[1].split("\n## ")[0]
    assert "| option_shuffle | 2 control test(s), step 100 | 1/2 = 0.50" in section  # x0 at p = 0.002
    assert "| 0/8 = 0.00" in section
    assert "| b | x0 | option_shuffle | 100 | -2.70 | 4 | -0.40 [-1.50, -0.10] | 0.20 |" in section
    assert "| b | x0_1 | option_shuffle | 100 | -0.40 | 4 | -0.40 [-1.50, -0.10] | 0.60 |" in section
    assert f"{-1 / math.log(10):.2f}" in section


def test_no_null_check_rows_no_section(tmp_path):
    m = write_manifest(tmp_path, (0, 16), ("b",), copies_end=4000)
    write_index(tmp_path, STEPS)
    write_rows(tmp_path, m, early_and_late, STEPS, ("ordering",))
    assert "## Null check" not in write_report(tmp_path, 0.01, "t").read_text()


def test_detection_plot_gives_each_detector_one_colour_and_each_benchmark_one_line_style(tmp_path, monkeypatch):
    dets = ("loss", "min_k", "min_k_pp", "option_shuffle", "ordering", "successor", "zlib")
    rows = [ResultRow(benchmark=b, partition=f"x{c}", count=c, detector=d, p=0.5 / (1 + c * k), log10_p=None)
            for b in ("synth_people", "synth_places") for c in (0, 4, 16, 64) for k, d in enumerate(dets, 1)]
    drawn = {}

    def keep(fig, path):
        drawn["lines"] = [ln for ln in fig.axes[0].get_lines() if ln.get_label() and not ln.get_label().startswith("_")]
        drawn["legend"] = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
        return path

    monkeypatch.setattr(plots, "_save", keep)
    plots.detection_vs_copies(rows, 0.01, tmp_path / "d.png", "t")
    series = {ln.get_label(): ln for ln in drawn["lines"] if "(" in ln.get_label()}
    assert len(series) == 14
    for d in dets:
        people, places = series[f"{d} (synth_people)"], series[f"{d} (synth_places)"]
        assert people.get_color() == places.get_color() and people.get_linestyle() != places.get_linestyle()
    colours = {series[f"{d} (synth_people)"].get_color() for d in dets}
    assert len(colours) == len(dets) and "red" not in colours and "C3" not in colours
    assert set(dets) <= set(drawn["legend"]) and {"synth_people", "synth_places"} <= set(drawn["legend"])


def test_a_null_check_newer_than_the_report_makes_the_report_stage_run_again(tmp_path):
    """The null check can add rows after the audit's (watch mode, a later `spikein audit`):
    the report made before them is stale."""
    import os
    from types import SimpleNamespace

    from audit.null_check import null_check_path
    from core.run_dir import RunDir
    from report.report import stage_state

    rd, cfg = RunDir(tmp_path), SimpleNamespace(run_dir=str(tmp_path))
    for path in (rd.results, rd.report_md, null_check_path(tmp_path)):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}\n")
    os.utime(rd.results, ns=(1_000, 1_000))
    os.utime(null_check_path(tmp_path), ns=(1_000, 1_000))
    os.utime(rd.report_md, ns=(2_000, 2_000))
    assert stage_state(cfg).status == "done"
    os.utime(null_check_path(tmp_path), ns=(3_000, 3_000))
    assert stage_state(cfg).status == "absent"
