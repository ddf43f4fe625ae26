"""The report shows the corpus scan, controls first, and marks a control found in the corpus."""
from __future__ import annotations

from core.atomic import write_json
from inject.corpus_scan import Found, ScanResult, scan_json
from report.corpus_scan_table import wandb_counts
from report.report import write_report
from tests.report_fixtures import write_index, write_manifest, write_rows


def found(count: int, offset: int) -> Found:
    f = Found()
    for k in range(count):
        f.add(offset + 1000 * k, 0, "rendering")
    return f


def scanned_run(run):
    m = write_manifest(run, (0, 4, 16), ("b",), copies_end=4000)
    write_index(run, (10, 50))
    write_rows(run, m, lambda b, p, c, d, s: 0.5 if c == 0 else 1e-4, (10, 50), ("ordering",))
    result = ScanResult({("b", "x0", "q3"): {"rendering": found(1, 777), "question": found(2, 700)},
                         ("b", "x0", "q8"): {"question": found(1, 9000)},
                         ("b", "x16", "q1"): {"question": found(3, 50)}}, tokens=100_000, seconds=0.1)
    scan = scan_json(m, result)
    write_json(run / "data/corpus_scan.json", scan)
    return scan


def test_report_names_found_controls_first_and_marks_them(tmp_path):
    scan = scanned_run(tmp_path)
    md = write_report(tmp_path, 0.01, "t").read_text()
    table = md.split("## Corpus scan")[1].split("\n## ")[0]
    rows = [line for line in table.splitlines() if line.startswith("| b |")]
    assert rows[0] == "| b | x0 **control seen** | 0 | 10 | 2 | 1 | 2 | q3, q8 |"  # controls first
    assert rows[1:] == ["| b | x4 | 4 | 10 | 0 | 0 | 0 | - |", "| b | x16 | 16 | 10 | 1 | 0 | 1 | q1 |"]
    results = md.split("## Results at step")[1]
    assert "| b | x0 (in corpus: 2) | 0 |" in results and "| b | x16 (in corpus: 1) | 16 |" in results
    assert "| b | x4 | 4 |" in results
    assert "- b/x0 [2 items in the corpus: data/corpus_scan.json] (control): not flagged" in md
    assert "- b/x4 (4 copies)" in md
    assert scan["benchmarks"]["b"]["x0"]["items"]["q3"] == {"rendering": {"count": 1, "offsets": [777]},
                                                            "question": {"count": 2, "offsets": [700, 1700]}}
    assert wandb_counts(scan) == {"corpus_scan/b/x0": 2, "corpus_scan/b/x4": 0, "corpus_scan/b/x16": 1}


def test_report_without_a_scan_says_so(tmp_path):
    scanned_run(tmp_path)
    (tmp_path / "data/corpus_scan.json").unlink()
    md = write_report(tmp_path, 0.01, "t").read_text()
    assert "Not recorded: data/ was built before the scan existed" in md and "(in corpus" not in md
