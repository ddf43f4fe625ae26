"""The report reads results rows and says, per partition, which detector saw what."""
import math
from pathlib import Path

from inject.atomic import append_jsonl, write_json
from inject.manifest import BenchmarkPlan, Copy, Manifest, Partition
from launch.report import write_report
from launch.sweep_report import write_sweep_report


def fake_run(run: Path, strong: float) -> None:
    parts = [Partition("b", f"x{c}", c, 10, f"partitions/b/x{c}.jsonl") for c in (0, 4, 16)]
    copies = [Copy("b", f"x{c}", k, 100 * k, 100 * k + 50, "document", "mcq") for c in (4, 16) for k in range(c)]
    m = Manifest("h", "t", "tokenizer", 100, "uint16", 10_000, 0, None, "\n\n", [1], [BenchmarkPlan("b", "mcq", "document", (0.0, 1.0), 30)],
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
    assert "b/x16 (16 copies): detected by option_shuffle from step 100 (final p = 1e-06); ordering from step 100 (final p = 1e-06); accuracy 0.65 (+0.40 vs controls)" in md
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
    from launch.results import sustained_detection
    rows = [dict(step=s, benchmark="b", partition="x4", detector="ordering", p=p)
            for s, p in ((0, 0.5), (50, 0.001), (100, 0.2), (150, 0.005), (200, 0.004))]
    rows += [dict(step=s, benchmark="b", partition="x8", detector="ordering", p=p) for s, p in ((50, 0.001), (100, 0.3))]
    found = sustained_detection(rows, 0.01)
    assert found[("b", "x4", "ordering")]["step"] == 150 and found[("b", "x4", "ordering")]["final_p"] == 0.004
    assert ("b", "x8", "ordering") not in found
