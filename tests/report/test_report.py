"""The report reads results rows and says, per partition, which detector saw what."""
import math
from pathlib import Path

from core.atomic import append_jsonl, write_json
from core.checkpoint_index import Checkpoint, CheckpointIndex
from inject.manifest import BenchmarkPlan, Copy, Manifest, Partition
from report.report import write_report
from report.sweep_report import write_sweep_report


def fake_run(run: Path, strong: float) -> None:
    parts = [Partition("b", f"x{c}", c, 10, f"partitions/b/x{c}.jsonl") for c in (0, 4, 16)]
    copies = [Copy("b", f"x{c}", k, 100 * k, 100 * k + 50, "document", "mcq") for c in (4, 16) for k in range(c)]
    m = Manifest("h", "t", "tokenizer", 100, "uint16", 10_000, 0, None, "\n\n", [1], [BenchmarkPlan("b", "mcq", "document", (0.0, 1.0), 30)],  # noqa: E501
                 parts, copies, n_documents=50, injected_tokens=1000)
    write_json(run / "data/manifest.json", m.to_json())
    write_json(run / "checkpoints/index.json", {"checkpoints": [{"step": s, "tokens_seen": s * 100} for s in (50, 100)], "finished": True})
    for step in (50, 100):
        for c in (0, 4, 16):
            p = {0: 0.4, 4: 0.2, 16: strong if step == 100 else 0.03}[c]
            for det in ("ordering", "option_shuffle"):
                append_jsonl(run / "audit/results.jsonl", dict(
                    step=step, tokens_seen=step * 100, benchmark="b", partition=f"x{c}", count=c, copies_seen=c,
                    detector=det, statistic=1.0, p=p, log10_p=math.log10(p), n_items=10))
            append_jsonl(run / "audit/results.jsonl", dict(
                step=step, tokens_seen=step * 100, benchmark="b", partition=f"x{c}", count=c, copies_seen=c,
                detector="accuracy", statistic=0.25 + c / 40, p=None, log10_p=None, n_items=10, accuracy=0.25 + c / 40))


def test_report_verdicts_table_and_plots(tmp_path):
    fake_run(tmp_path, strong=1e-6)
    md = write_report(tmp_path, 0.01, "t").read_text()
    assert "b/x16 (16 copies): detected by option_shuffle from step 100 (final p = 1e-06); ordering from step 100 (final p = 1e-06); accuracy 0.65 (+0.40 vs controls)" in md  # noqa: E501
    assert "b/x4 (4 copies): not detected" in md
    assert "b/x0 (control): not flagged, as it should be" in md
    assert "| b | x16 | 16 |" in md
    for png in ("detection_vs_copies", "accuracy_vs_copies", "ordering_vs_step", "option_shuffle_vs_step"):
        assert (tmp_path / "report" / f"{png}.png").stat().st_size > 5000
        assert f"({png}.png)" in md


def test_flagged_control_is_called_a_false_positive(tmp_path):
    fake_run(tmp_path, strong=1e-6)
    append_jsonl(tmp_path / "audit/results.jsonl", dict(
        step=100, tokens_seen=10_000, benchmark="b", partition="x0", count=0, copies_seen=0,
        detector="zlib", statistic=1.0, p=1e-3, log10_p=-3.0, n_items=10))
    md = write_report(tmp_path, 0.01, "t").read_text()
    assert "b/x0 (control): FLAGGED (false positive): zlib from step 100" in md


def test_sweep_report_aggregates_runs(tmp_path):
    for name, strong in (("0", 1e-6), ("1", 1e-2)):
        fake_run(tmp_path / name, strong)
    md = write_sweep_report(tmp_path, 0.01).read_text()
    assert "2 runs" in md and "| 0 | b | x16 |" in md and "| 1 | b | x16 |" in md
    assert (tmp_path / "report" / "sweep_detection.png").exists()


def test_an_early_dip_below_alpha_is_not_a_detection():
    from audit.results import ResultRow
    from report.results import sustained_detection
    rows = [ResultRow(step=s, benchmark="b", partition="x4", detector="ordering", p=p)
            for s, p in ((0, 0.5), (50, 0.001), (100, 0.2), (150, 0.005), (200, 0.004))]
    rows += [ResultRow(step=s, benchmark="b", partition="x8", detector="ordering", p=p) for s, p in ((50, 0.001), (100, 0.3))]
    found = sustained_detection(rows, 0.01)
    assert found[("b", "x4", "ordering")].since.step == 150 and found[("b", "x4", "ordering")].final.p == 0.004
    assert ("b", "x8", "ordering") not in found


# --- settings, comparison, exposure, forgetting (run dirs from tests/report_fixtures.py) ---


import pytest  # noqa: E402
from scipy import stats  # noqa: E402

from report import plots  # noqa: E402
from report.report import forgetting_series  # noqa: E402
from report.results import audit_rows, checkpoint_index, current_settings, last_exposure_steps, sustained_detection  # noqa: E402
from tests.report_fixtures import compose_config, settings_for, write_index, write_manifest, write_rows  # noqa: E402

STEPS = (20, 50, 100)  # copies end at token 4000: exposure completes at step 40


def p_two_detectors(bench, part, count, det, step):
    if det == "accuracy":
        return None
    if count == 0:
        return 0.005 if (det == "loss" and bench == "b1" and part == "x0") else 0.5
    if step < 40:
        return 0.5
    if det == "loss":
        return 1e-3
    return {16: 1e-4, 4: 1e-3 if step == 100 else 0.2}[count]


def accuracy_extra(value):
    def extra(part, det, step):
        if det != "accuracy":
            return {"auroc": 0.5 + part.count / 40} if det == "loss" else {}
        acc = value + part.count / 40
        return {"statistic": acc, "accuracy": acc}
    return extra


def two_bench_run(run, settings=None):
    m = write_manifest(run, (0, 0, 4, 16), ("b1", "b2"), copies_end=4000)
    write_index(run, STEPS)
    write_rows(run, m, p_two_detectors, STEPS, ("ordering", "loss", "accuracy"), settings=settings,
               extra=accuracy_extra(0.25))
    return m


def test_rows_scored_with_other_settings_are_never_mixed(tmp_path):
    """Re-auditing with accuracy.style=text appended text rows beside the letter rows: both
    landed in one table and the verdict's accuracy switched to whichever came last."""
    letter_cfg = compose_config("audit.detectors=[ordering,accuracy]")
    m = write_manifest(tmp_path, (0, 16), ("b",), copies_end=4000)
    write_index(tmp_path, STEPS)
    p = lambda b, part, c, d, s: None if d == "accuracy" else (1e-4 if c else 0.5)  # noqa: E731
    write_rows(tmp_path, m, p, STEPS, ("ordering", "accuracy"), settings_for(letter_cfg, m), accuracy_extra(0.25))
    text_cfg = compose_config("audit.detectors=[ordering,accuracy]", "audit.accuracy.style=text")
    write_rows(tmp_path, m, p, STEPS, ("accuracy",), settings_for(text_cfg, m), accuracy_extra(0.05))

    md = write_report(tmp_path, 0.01, "t", current_settings(letter_cfg, m)).read_text()
    main = md.split("## Rows scored with other settings")[0]
    assert main.count("| b | x16 | 16 | 16 | accuracy |") == 1
    assert "| b | x16 | 16 | 16 | accuracy | letter style | 0.65 |" in main
    # p < alpha from step 20, before the copies landed (step 39): never called a detection (issue 22)
    assert ("b/x16 (16 copies): not detected; p < 0.01 already before exposure, not counted as a detection (the "
            "partition stood out where no copy had been trained on; first copy trained on by step 39): ordering from "
            "step 20 (final p = 0.0001); accuracy 0.65 (+0.40 vs controls)") in md
    other = md.split("## Rows scored with other settings")[1]
    assert "accuracy with style=text (reported: letter)" in other and "| b | x16 | 16 | 16 | accuracy | text style | 0.45 |" in other
    assert "- accuracy: context=2048, precision=fp32, renderer=mcq, stride=1024, style=letter" in md

    md = write_report(tmp_path, 0.01, "t").read_text()  # no config: the newest rows, still never mixed
    assert md.split("## Rows scored")[0].count("| b | x16 | 16 | 16 | accuracy |") == 1
    assert "accuracy 0.45 (+0.40 vs controls)" in md and "style=letter (reported: text)" in md


def test_detector_comparison_fisher_and_smallest_counts(tmp_path):
    two_bench_run(tmp_path)
    md = write_report(tmp_path, 0.01, "t").read_text()
    table = md.split("## Detector comparison at step 100\n")[1].split("\n## ")[0]
    assert "| copies | loss | ordering |" in table  # any detector with a p, accuracy excluded
    fisher16 = stats.combine_pvalues([1e-4, 1e-4], method="fisher").pvalue
    fisher_loss4 = stats.combine_pvalues([1e-3, 1e-3], method="fisher").pvalue
    assert f"| 16 | {fisher_loss4:.2g} (2/2), AUROC 0.90 | {fisher16:.2g} (2/2) |" in table
    ctrl = stats.combine_pvalues([0.005, 0.5, 0.5, 0.5], method="fisher").pvalue
    assert f"| control | {ctrl:.2g} (1/4), AUROC 0.50 |" in table  # x0 and x0_1 of both benchmarks
    assert "| smallest count detected at the last checkpoint | 4 | 4 |" in table
    # ordering found x4 only at the last checkpoint, not at step 50 (after exposure at 40)
    assert "| smallest count detected at every checkpoint since exposure | 4 | 16 |" in table
    assert "loss 1/4 = 0.25 [0.05, 0.70]" in table and "ordering 0/4 = 0.00 [0.00, 0.49]" in table


def test_sustained_detection_differs_from_detection_since_exposure(tmp_path):
    from report.results import audit_rows, detected_since_exposure

    two_bench_run(tmp_path)
    rows = audit_rows(tmp_path)
    since = detected_since_exposure(rows, 0.01)
    assert since[("b1", "x4", "ordering")] is False and since[("b1", "x16", "ordering")] is True
    assert sustained_detection(rows, 0.01)[("b1", "x4", "ordering")].since.step == 100  # the trailing run only
    assert ("b1", "x0", "loss") not in since  # controls are never "exposed"


def test_forgetting_view_after_the_last_exposure(tmp_path):
    m = two_bench_run(tmp_path)
    index = checkpoint_index(tmp_path)
    assert last_exposure_steps(m, index)[("b1", "x16")] == 40  # ceil(4000 / 100 tokens per step)
    series = forgetting_series(audit_rows(tmp_path), m, index)
    assert series["ordering b1/x16 (x16)"] == [(10, -4.0), (60, -4.0)]  # step 20 came before it
    assert series["accuracy b2/x4 (x4)"] == [(10, 0.35), (60, 0.35)]
    assert not any("x0" in k for k in series)
    fig, axes = plots.plt.subplots(1, 2)
    plots.draw_forgetting(axes, series, 0.01)
    left = [line.get_xydata().tolist() for line in axes[0].get_lines()]
    assert [[11, -3.0], [61, -3.0]] in left  # loss b2/x4: x is steps since + 1 (log axis)
    detectors = sorted({k.split(" ")[0] for k in series} - {"accuracy"})
    assert axes[0].get_legend_handles_labels()[1] == detectors  # one entry per detector, not per line
    counts = sorted({k.rsplit("(", 1)[1].rstrip(")") for k in series if k.startswith("accuracy")})
    assert sorted(axes[1].get_legend_handles_labels()[1]) == counts  # accuracy: one entry per count
    plots.plt.close(fig)
    md = write_report(tmp_path, 0.01, "t").read_text()
    assert "(forgetting.png)" in md and (tmp_path / "report/forgetting.png").stat().st_size > 5000


def test_last_exposure_prefers_the_manifest_and_counts_later_epochs(tmp_path):
    m = write_manifest(tmp_path, (0, 4), ("b",), copies_end=4000)
    index = CheckpointIndex((Checkpoint(1100, 110_000),), tokens_per_step=100)
    assert last_exposure_steps(m, index)[("b", "x4")] == 1040  # second epoch: 100_000 + 4000 tokens
    m.extra["last_exposure_step"] = {"b/x4": 7}
    assert last_exposure_steps(m, index)[("b", "x4")] == 7


def test_report_counts_the_checkpoints_it_audited(tmp_path):
    two_bench_run(tmp_path)
    write_index(tmp_path, (*STEPS, 150, 200))  # trained further, audited only three
    md = write_report(tmp_path, 0.01, "t").read_text()
    assert "5 checkpoints saved" in md and "- audited: 3 checkpoints (steps 20, 50, 100)" in md


def test_option_shuffle_descriptive_rates_are_never_a_detection(tmp_path):
    m = write_manifest(tmp_path, (0, 16), ("b",), copies_end=4000)
    write_index(tmp_path, STEPS)
    write_rows(tmp_path, m, lambda *a: 0.5, STEPS, ("option_shuffle",),
               extra=lambda part, det, step: {"rate_a": 0.9, "chance_rate_a": 1 / 24, "null": "controls",
                                              "calibrated": True, "rate_b": {"-0.2": 0.45, "-0.15": 0.53}})
    md = write_report(tmp_path, 0.01, "t").read_text()
    assert "b/x16 (16 copies): not detected" in md
    rates = md.split("## Option shuffle: the paper's descriptive rates (not a detection)\n")[1].split("\n## ")[0]
    assert "never count as a detection" in rates
    assert "| rate b (delta -0.2) | rate b (delta -0.15) |" in rates and "| b | x16 | 16 | 0.9 | 0.04167 | 0.45 | 0.53 |" in rates
    assert "| option_shuffle | controls (calibrated) |" in md


def test_wandb_curves_never_mix_settings():
    from audit.wandb_plots import settings_variants

    rows = [dict(detector="accuracy", settings={"style": st, "context": 2048}, step=1) for st in ("letter", "text", "letter")]
    variants = dict(settings_variants(rows))
    assert set(variants) == {"_style=letter", "_style=text"} and len(variants["_style=letter"]) == 2
    assert settings_variants(rows[:1]) == [("", rows[:1])]


def test_run_report_logs_the_comparison_table_to_wandb(tmp_path, monkeypatch):
    import core.wandb_log
    from report.report import run_report

    two_bench_run(tmp_path)
    logged = []

    class FakeRun:
        active = True  # a live W&B run (the null run says False)
        log = logged.append

        def finish(self):
            pass

    monkeypatch.setattr(core.wandb_log, "init_wandb", lambda *a, **k: FakeRun())
    assert run_report(compose_config(f"run_dir={tmp_path}", "audit.detectors=[ordering,accuracy]")) == 0
    table = logged[0]["report/detector_comparison"]
    cells = {(row[table.columns.index("count")], row[table.columns.index("detector")]):
             row[table.columns.index("log10_p_fisher")] for row in table.data}
    assert cells[(16, "ordering")] == pytest.approx(math.log10(stats.combine_pvalues([1e-4, 1e-4], method="fisher").pvalue))
    assert "report/forgetting" in logged[0] and "report/loss_vs_step" in logged[0]


def test_structured_option_orders_are_named_with_p_without_them(tmp_path):
    m = write_manifest(tmp_path, (0, 16), ("b",), copies_end=4000)
    write_index(tmp_path, STEPS)
    write_rows(tmp_path, m, lambda *a: 0.004, STEPS, ("option_shuffle",),
               extra=lambda part, det, step: {"structured_items": 3, "structure": {"sorted_length": 3, "all_of_above": 0},
                                              "p_unstructured": 0.2, "log10_p_unstructured": math.log10(0.2)})
    md = write_report(tmp_path, 0.01, "t").read_text()
    assert "| b | x16 | 16 | 3/10 | sorted_length 3 | 0.004 | 0.2 |" in md.split("## Option orders with structure")[1]
