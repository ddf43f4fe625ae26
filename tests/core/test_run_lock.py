"""core.run_lock: one writer per stage of a run dir, and a run dir that cannot be written is
one line before anything starts."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from user_env_fixtures import PY, REPO, env

from core.errors import SpikeinError

HOLDER = """
import sys, time
from core.run_lock import stage_lock
with stage_lock(sys.argv[1], "train"):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_second_writer_is_refused_naming_the_holders_pid(tmp_path):
    from core.run_lock import stage_lock

    run = tmp_path / "run"
    holder = subprocess.Popen([PY, "-c", HOLDER, str(run)], env=env(), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(SpikeinError, match=rf"train stage is already running \(pid {holder.pid} holds"):
            with stage_lock(run, "train"):
                pass
        with stage_lock(run, "audit"):  # other stages are free
            with stage_lock(run, "audit"):  # and this process may take its own lock again
                pass
    finally:
        holder.kill()
        holder.wait()
    with stage_lock(run, "train"):  # the kernel released a killed holder's lock
        assert (run / ".lock.train").read_text().strip() == str(os.getpid())


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "launch.cli", *args], cwd=REPO, env=env(), capture_output=True,
                          text=True, timeout=300)


def test_read_only_run_dir_is_one_line(tmp_path, monkeypatch):
    run = tmp_path / "ro"
    run.mkdir()
    run.chmod(0o555)
    try:
        if os.access(run, os.W_OK):  # root writes whatever the mode: pretend the kernel refuses
            from core import run_lock

            real = os.access
            monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == run else real(p, mode))
            with pytest.raises(SpikeinError, match=f"run_dir={run}/r: {run} is not writable"):
                run_lock.check_run_dir(run / "r")
            return
        proc = _cli("inject", f"run_dir={run}/r")
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "is not writable" in proc.stderr
    finally:
        run.chmod(0o755)
