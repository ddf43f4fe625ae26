"""Several machines on one: srun tasks, two torchrun "nodes", preemption, cluster faults."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from audit.results import read_rows
from core.run_dir import RunDir
from tests.launch.cluster_fixtures import fake_srun
from tests.launch.test_pipeline import needs_shared, tiny_run
from tests.torchrun import run_nodes

REPO = Path(__file__).resolve().parents[2]


def spikein(*args: str, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    full = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "launch.cli", *args], capture_output=True, text=True,
                          env=full, cwd=REPO, **kw)


def short_run(run_dir: Path, *extra: str) -> list[str]:
    return tiny_run(run_dir, "train.max_steps=20", "train.checkpoint_every=10", "train.micro_batch=4",
                    "inject.allow_untrained_copies=true",
                    *extra)


def row_keys(rows: list[dict]) -> Counter:
    keep = ("step", "benchmark", "partition", "detector", "statistic")
    return Counter(tuple(json.dumps(r.get(k)) for k in keep) for r in rows)


@pytest.mark.slow
@needs_shared
def test_srun_tasks_without_torchrun_map_their_rank(tmp_path):
    run_dir = tmp_path / "slurm"
    env = fake_srun(tmp_path / "bin", tmp_path / "srun.log")
    r = spikein("run", *short_run(run_dir, "launcher=slurm", "launcher.nproc_per_node=2",
                                  "launcher.master_addr=127.0.0.1"), env={**env, "SLURM_CPUS_PER_TASK": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    keys = row_keys(read_rows(RunDir(run_dir).results))
    assert keys and set(keys.values()) == {1}, [k for k, n in keys.items() if n > 1][:3]
    for stage in ("train", "audit"):
        logs = run_dir / stage / "logs" if stage == "train" else run_dir / "logs" / "audit"
        assert sorted(p.name for p in logs.glob("rank*.log")) == ["rank0.log", "rank1.log"], stage
        assert sorted(p.name for p in logs.glob("rank*.done")) == ["rank0.done", "rank1.done"], stage
    assert "--cpus-per-task=1" in (tmp_path / "srun.log").read_text()


@pytest.mark.slow
@needs_shared
def test_two_torchrun_nodes_run_the_pipeline_once(tmp_path):
    from tests.torchrun import free_port

    run_dir = tmp_path / "nodes"
    common = short_run(run_dir, "launcher=torchrun", "launcher.num_nodes=2", "launcher.nproc_per_node=1",
                       "launcher.master_addr=127.0.0.1", f"launcher.master_port={free_port()}")
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    outs = run_nodes([[sys.executable, "-m", "launch.cli", "run", *common, f"launcher.node_rank={k}"] for k in (0, 1)],
              REPO, env, timeout=600)
    keys = row_keys(read_rows(RunDir(run_dir).results))
    assert keys and set(keys.values()) == {1}
    assert (run_dir / "report" / "report.md").exists()
    for logs in (run_dir / "train" / "logs", run_dir / "logs" / "audit"):
        assert sorted(p.name for p in logs.glob("rank*.done")) == ["rank0.done", "rank1.done"], logs
    assert "inject:" not in outs[1] and "report:" not in outs[1]  # node 1 only ran its workers
