"""SmolLM2-135M (tests/real_model.py) audited with itself as audit.reference_model, through the CLI:
a model against itself is never contaminated (every paired p = 1), and the report says so first.

The reference is the same weights under another path, so it is scored on its own (its own cache
tag), not read back from the target's scores. Four MMLU items: the model runs at tens of tokens/s
on shared CPUs."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SHARED_DATA, shared_data
from real_model import smollm2  # noqa: F401  (the session fixture)

ROOT = Path(__file__).resolve().parents[2]
MMLU = SHARED_DATA / "benchmarks" / "mmlu" / "test"


def spikein(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "disabled"}
    return subprocess.run([sys.executable, "-m", "launch.cli", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT)


@pytest.mark.slow
@shared_data(MMLU)
def test_smollm2_against_itself_is_never_contaminated(smollm2, tmp_path):  # noqa: F811
    from audit.results import read_rows
    from core.run_dir import RunDir

    reference = tmp_path / "same_weights"
    reference.symlink_to(smollm2, target_is_directory=True)
    run_dir = tmp_path / "audit"
    r = spikein("audit", f"model={smollm2}", f"audit.reference_model={reference}", "benchmarks=mmlu_local",
                "benchmark=mmlu", f"benchmarks.mmlu.path={MMLU}", "audit.limit=4", f"run_dir={run_dir}",
                "audit.detectors=[option_shuffle,ordering,accuracy,loss]", "audit.ordering.shards=2",
                "audit.ordering.permutations=3", "audit.option_shuffle.isolation_forest=false",
                "audit.progress=false", "logger.mode=disabled")
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"reference {reference}: scoring 4 (benchmark, detector) pair(s)" in r.stderr  # scored, not copied
    rows = read_rows(RunDir(run_dir).results)
    assert {row["detector"] for row in rows} == {"option_shuffle", "ordering", "accuracy", "loss"}
    for row in rows:
        assert row["reference"] == str(reference) and row["paired_p"] == 1.0, row
        assert row["paired_statistic"] == 0, row
    assert spikein("report", f"run_dir={run_dir}", "logger.mode=disabled").returncode == 0
    md = (run_dir / "report" / "report.md").read_text()
    assert md.splitlines()[2].startswith("> The tests below are paired:")
