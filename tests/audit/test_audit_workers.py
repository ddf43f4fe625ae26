"""The audit's data-parallel ranks (issue 11): each leaves a rank log, and a failure names one
that exists."""
from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import SpikeinError
from core.workers.launch import launch_workers


@pytest.mark.slow
def test_audit_ranks_leave_rank_logs_and_their_failure_names_an_existing_log(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(SpikeinError) as e:  # no worker settings: every rank fails at once
        launch_workers("audit.worker", run, {"kind": "local", "nproc_per_node": 2}, env={"WANDB_MODE": "disabled"})
    msg = str(e.value)
    assert msg.startswith("audit.worker rank ") and "worker_config.yaml missing" in msg
    log = Path(msg.split("(log: ")[1].rstrip(")"))
    assert log.exists() and "worker_config.yaml missing" in log.read_text()
    assert {p.name for p in (run / "logs" / "audit").glob("rank*.log")} == {"rank0.log", "rank1.log"}
