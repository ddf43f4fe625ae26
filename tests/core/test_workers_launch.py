"""core.workers.launch in a researcher's environment (issue 11): every launcher starts the
workers without the user's working directory on their path, and workers die with their parent."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from user_env_fixtures import PY, REPO, env, shadowing_cwd

from core.workers.launch import launch_workers

PROBE = """
import os, sys
from pathlib import Path
from core.workers.process import run_worker

def main(run_dir):
    import audit, train
    Path(run_dir, f"probe{os.environ['RANK']}").write_text(train.__file__ + "\\n" + audit.__file__)

if __name__ == "__main__":
    run_worker(main, prefix="probe")
"""


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["local", "torchrun", "deepspeed"])
def test_every_launcher_starts_workers_without_the_working_directory(tmp_path, monkeypatch, kind):
    cwd, marker = shadowing_cwd(tmp_path)
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "probe_worker.py").write_text(PROBE)
    run = tmp_path / "run"
    run.mkdir()
    monkeypatch.chdir(cwd)  # the workers inherit it
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path / "mods"), str(REPO)]))
    launch_workers("probe_worker", run, {"kind": kind, "nproc_per_node": 2}, env={"DS_ACCELERATOR": "cpu"})
    for rank in (0, 1):
        train_file, audit_file = (run / f"probe{rank}").read_text().splitlines()
        assert Path(train_file) == REPO / "train" / "__init__.py" and Path(audit_file).parent == REPO / "audit"
    assert not marker.exists()


SLEEPER = """
import os, time
from pathlib import Path
from core.workers.process import run_worker

def main(run_dir):
    (run_dir / f"pid{os.environ['RANK']}").write_text(str(os.getpid()))
    time.sleep(120)

if __name__ == "__main__":
    run_worker(main, prefix="sleeper")
"""

PARENT = """
import sys
from core.workers.launch import launch_workers
launch_workers("sleeper_worker", sys.argv[1], {"kind": "local", "nproc_per_node": 2})
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "State:\tZ" in status.read_text())


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_workers_die_with_their_parent(tmp_path, how):
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "sleeper_worker.py").write_text(SLEEPER)
    run = tmp_path / "run"
    run.mkdir()
    parent = subprocess.Popen([PY, "-c", PARENT, str(run)], env=env(PYTHONPATH=os.pathsep.join([str(tmp_path / "mods"), str(REPO)])),
                              stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and len(list(run.glob("pid*"))) < 2:
        time.sleep(0.05)
    pids = [int(p.read_text()) for p in run.glob("pid*")]
    assert len(pids) == 2
    parent.send_signal(how)
    parent.wait()
    deadline = time.time() + 15
    while time.time() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.05)
    leftover = [p for p in pids if _alive(p)]
    for p in leftover:
        os.kill(p, signal.SIGKILL)
    assert not leftover


ABORTS_AT_TEARDOWN = """
import atexit, os
from core.workers.process import run_worker

def main(run_dir):
    atexit.register(os.abort)  # as a library thread left joinable does: std::terminate at teardown

if __name__ == "__main__":
    run_worker(main, prefix="teardown")
"""


def test_a_rank_that_finished_is_not_failed_by_a_teardown_abort(tmp_path):
    """CI once saw an srun rank exit 250 after writing rank<r>.done ("terminate called without
    an active exception"): a finished rank leaves without the interpreter's teardown."""
    (tmp_path / "teardown_worker.py").write_text(ABORTS_AT_TEARDOWN)
    run = tmp_path / "run"
    run.mkdir()
    proc = subprocess.run([PY, str(tmp_path / "teardown_worker.py"), str(run)], capture_output=True, text=True,
                          env=env(PYTHONPATH=str(REPO), RANK="0", WORLD_SIZE="1", LOCAL_RANK="0",
                                  SPIKEIN_LOG_DIR=str(tmp_path / "logs")))
    assert proc.returncode == 0, proc.stderr[-500:]
    assert (tmp_path / "logs" / "rank0.done").exists()
