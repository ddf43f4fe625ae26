"""bench/gpu_check.sh runs end to end on the CPU (--cpu, tiny sizes): the GPU check is known to
work before a GPU is lent."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_gpu_check_runs_end_to_end_on_cpu(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path / "out"), "PY": sys.executable, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(REPO)}
    proc = subprocess.run(["bash", str(REPO / "bench" / "gpu_check.sh"), "--cpu"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=1800)
    table = (tmp_path / "out" / "gpu_check.md").read_text()
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = [line.split(" | ") for line in table.splitlines()[2:]]
    status = {r[0].strip("| "): r[2] for r in rows if r[1] == "status"}
    assert set(status) == {"train_160m", "train_05b", "audit", "precision"}
    assert all(v.startswith("ok") for v in status.values()), status
    # the device audit (here the CPU again, other chunks) gives the CPU audit's p-values, every detector
    same = [r for r in rows if r[0].startswith("| audit cpu fp32 vs cpu fp32")]
    assert len(same) == 8 and all(float(r[2].strip(" |")) < 1e-6 for r in same), same
    assert sum(r[0].startswith("| precision cpu amp vs fp32") for r in rows) == 8
    assert "train_05b | plan | seq 64 x micro 4, fp32, ZeRO-2, checkpointing True, loss chunk 128" in table
