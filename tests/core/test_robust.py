"""A researcher's environment (issue 11): the user's own code is never run, W&B down costs
no results, one writer per stage of a run dir, refused runs write nothing, leftovers and bad
inputs give one line, one worker protocol for every multi-process stage."""
from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from train_fixtures import make_run, train_overrides

from core.errors import SpikeinError
from core.workers.launch import free_port, launch_workers
from launch.config import compose

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable
FAKE_KEY = "local-" + "f" * 40  # W&B's key shape; must never reach a file
TRAIN_ARGS = ("train.max_steps=4", "train.checkpoint_every=2", "train.keep_last=2")
USER_CODE = 'import pathlib; pathlib.Path({marker!r}).write_text(__file__); raise SystemExit("USER CODE RAN")\n'


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "WANDB_MODE": "disabled", **extra}


def _shadowing_cwd(tmp: Path) -> tuple[Path, Path]:
    """A research repo's working directory: its own train.py, train/ and audit.py."""
    cwd, marker = tmp / "research", tmp / "user_code_ran"
    (cwd / "train").mkdir(parents=True)
    for rel in ("train.py", "train/__init__.py", "audit.py"):
        (cwd / rel).write_text(USER_CODE.format(marker=str(marker)))
    return cwd, marker


def _wandb_down_env(tmp: Path) -> dict[str, str]:
    """Online W&B with a closed port, an invalid key, a short init timeout, no netrc."""
    return _env(WANDB_MODE="online", WANDB_BASE_URL=f"http://127.0.0.1:{free_port()}",
                WANDB_API_KEY=FAKE_KEY, HOME=str(tmp / "home"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """`python -m launch.cli train` from a shadowing cwd with W&B online but unreachable."""
    tmp = tmp_path_factory.mktemp("robust")
    cwd, marker = _shadowing_cwd(tmp)
    run = tmp / "run"
    make_run(run, n_tokens=2048)
    args = [a for a in train_overrides(run, *TRAIN_ARGS) if not a.startswith("logger.mode")]
    t0 = time.time()
    proc = subprocess.run([PY, "-m", "launch.cli", "train", *args, "logger.init_timeout_s=5"], cwd=cwd,
                          env=_wandb_down_env(tmp), capture_output=True, text=True, timeout=600)
    return run, marker, proc, time.time() - t0


@pytest.mark.slow
def test_workers_never_import_the_users_train_or_audit_module(trained):
    run, marker, proc, _ = trained
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not marker.exists(), f"spikein imported {marker.read_text()}"
    index = json.loads((run / "checkpoints" / "index.json").read_text())
    assert index["finished"] and max(c["step"] for c in index["checkpoints"]) == 4


@pytest.mark.slow
def test_wandb_down_falls_back_offline_with_one_warning_and_keeps_every_result(trained):
    run, _, proc, wall = trained
    assert proc.returncode == 0, proc.stderr[-2000:]
    warnings = [ln for ln in proc.stderr.splitlines() if "W&B" in ln]
    assert len(warnings) == 1 and "wandb sync " in warnings[0], warnings
    [synced] = glob.glob(warnings[0].split("wandb sync ")[1].strip("` "))
    assert any(Path(synced).rglob("*.wandb"))  # the offline run, ready to upload
    assert len((run / "train" / "metrics.jsonl").read_text().splitlines()) == 4
    assert wall < 120
    for path in run.rglob("*"):  # the key is never written, W&B's own files included
        if path.is_file():
            assert FAKE_KEY.encode() not in path.read_bytes(), path


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
    cwd, marker = _shadowing_cwd(tmp_path)
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


@pytest.mark.slow
def test_wandb_init_timeout_and_bad_key_give_an_offline_run(tmp_path, monkeypatch, capsys):
    """Each command (session) tries online once: a later stage of the same command goes
    offline at once and says nothing more; the next command tries again."""
    from core.wandb_log import SESSION_ENV, init_wandb

    for key, value in _wandb_down_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    for session, missing_key, warns in [("a", False, 1), ("a", False, 0), ("b", True, 1)]:
        monkeypatch.setenv(SESSION_ENV, session)
        if missing_key:
            monkeypatch.delenv("WANDB_API_KEY")
        t0 = time.time()
        run = init_wandb({"mode": None, "init_timeout_s": 3}, run_dir=str(tmp_path), job_type="t",
                         config={"logger": {"api_key": FAKE_KEY}})
        run.log({"x": 1.0}, step=1)
        run.finish()
        assert run.active and run.run.settings.mode == "offline" and time.time() - t0 < 30
        err = capsys.readouterr().err
        assert err.count("W&B: online start failed") == warns and ("logging offline" in err) == bool(warns), err
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert FAKE_KEY.encode() not in path.read_bytes(), path


def test_disabled_wandb_is_a_null_run_callers_use_as_is():
    from core.wandb_log import NullRun, init_wandb

    run = init_wandb({"mode": "disabled"}, run_dir="/nonexistent", job_type="t", config={})
    assert isinstance(run, NullRun) and not run.active
    run.define_metric("a/*", step_metric="a/step")
    run.log({"a/x": 1}, step=3)
    run.finish()


@pytest.mark.slow
def test_a_refused_pipeline_run_writes_nothing(trained, monkeypatch):
    """A finished run at lr 3e-3, rerun with train.lr=0.001: refused, config.yaml untouched."""
    import inject.stage
    from core.stage_state import StageState
    from launch.pipeline import run_pipeline

    run = trained[0]
    (run / "config.yaml").write_text("lr: 0.003\n")
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*")}
    # the hand-built data/ of train_fixtures has no inject config: inject's check passes as is
    monkeypatch.setattr(inject.stage, "stage_state", lambda cfg: StageState("inject", "done"))
    monkeypatch.setattr(inject.stage, "run_inject", lambda cfg: 0)
    cfg = compose(train_overrides(run, *TRAIN_ARGS, "train.lr=0.001"))
    with pytest.raises(SpikeinError, match=r"changed: .*lr"):
        run_pipeline(cfg)
    assert (run / "config.yaml").read_text() == "lr: 0.003\n"
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*")} == before


@pytest.mark.slow
def test_truncated_deepspeed_state_names_the_file_and_no_stale_log_lines(trained, tmp_path):
    from train.stage import run_train

    run = tmp_path / "run"
    shutil.copytree(trained[0], run)
    index_path = run / "checkpoints" / "index.json"
    index = json.loads(index_path.read_text())  # killed after step 2's checkpoint was written
    index.update(finished=False, checkpoints=[c for c in index["checkpoints"] if c["step"] <= 2])
    index_path.write_text(json.dumps(index))
    state = run / "checkpoints" / "step_2" / "ds" / "mp_rank_00_model_states.pt"
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    with pytest.raises(SpikeinError) as e:
        run_train(compose(train_overrides(run, *TRAIN_ARGS)))
    msg = str(e.value)
    assert str(state) in msg and "\n" not in msg
    assert "starting from step 0" not in msg  # the first attempt's lines stay in rank0.log.1
    assert "starting from step 0" in (run / "train" / "logs" / "rank0.log.1").read_text()


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
    holder = subprocess.Popen([PY, "-c", HOLDER, str(run)], env=_env(), stdout=subprocess.PIPE, text=True)
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
    env = _env(PYTHONPATH=os.pathsep.join([str(tmp_path / "mods"), str(REPO)]))
    parent = subprocess.Popen([PY, "-c", PARENT, str(run)], env=env, stderr=subprocess.DEVNULL)
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


def test_gather_in_order_refuses_a_missing_index():
    from core.workers.collective import gather_in_order

    assert gather_in_order(3, [2, 0, 1], ["c", "a", "b"]) == ["a", "b", "c"]
    assert gather_in_order(2, [1, 0], [None, 0.5]) == [0.5, None]  # None is a value, not a gap
    with pytest.raises(RuntimeError, match="1 of 3 indices never came back"):
        gather_in_order(3, [0, 2], [1.0, 3.0])


def _cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "launch.cli", *args], cwd=cwd, env=_env(), capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow
def test_bad_run_dirs_and_models_are_one_line(tmp_path):
    afile = tmp_path / "a_file"
    afile.write_text("x")
    for args, want in ((["inject", f"run_dir={afile}"], f"run_dir={afile} is a file"),
                       (["run", f"run_dir={afile}"], f"run_dir={afile} is a file"),
                       (["audit", "model=/nonexistent", f"run_dir={tmp_path / 'r'}"],
                        "audit.model=/nonexistent: no such directory or hub id")):
        proc = _cli(*args)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("spikein: error: "), proc.stderr
        assert want in lines[0]
    assert not (tmp_path / "r").exists()  # a refused audit leaves no run dir behind


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


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_a_run_dir_the_kernel_refuses_to_create_is_one_line(tmp_path, capsys):
    """/proc passes the writable check (root) but refuses mkdir: was a FileNotFoundError traceback."""
    from launch.cli import main

    assert main(["inject", "run_dir=/proc/spikein_cannot_exist/r"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("spikein: error: ") and "/proc/spikein_cannot_exist" in err, err


@pytest.mark.slow
def test_help_into_a_closed_pipe_has_no_traceback():
    proc = subprocess.run(f"{PY} -m launch.cli run --help | head -2", shell=True, cwd=REPO, env=_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.stdout.startswith("spikein run:") and len(proc.stdout.splitlines()) == 2
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr


def test_killed_inject_leftovers_are_removed_by_the_next_run(tmp_path):
    from inject.stage import run_inject
    from tests.inject_fixtures import inject_config

    cfg = inject_config(tmp_path)
    run = Path(cfg.run_dir)
    (run / ".inject.killed.tmp" / "data").mkdir(parents=True)
    run_inject(cfg)
    assert not list(run.glob(".inject.*.tmp")) and (run / "data" / "manifest.json").exists()


def test_progress_bars_only_on_a_terminal(tmp_path, capfd):
    import io

    from core.progress import show_bars
    from inject.stage import run_inject
    from tests.inject_fixtures import inject_config

    assert not show_bars(io.StringIO())
    run_inject(inject_config(tmp_path))  # tokenizing, writing and verifying bars
    err = capfd.readouterr().err
    assert "\r" not in err and "%|" not in err, err[-500:]
