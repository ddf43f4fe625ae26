"""The CLI in a researcher's environment (issue 11): the user's own code is never run, W&B
down costs no results, refused runs write nothing, bad run dirs and models give one line."""
from __future__ import annotations

import glob
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from train_fixtures import train_overrides
from user_env_fixtures import FAKE_KEY, PY, REPO, TRAIN_ARGS, env

from core.errors import SpikeinError
from launch.config import compose


@pytest.mark.slow
def test_workers_never_import_the_users_train_or_audit_module(cli_trained):
    run, marker, proc, _ = cli_trained
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not marker.exists(), f"spikein imported {marker.read_text()}"
    index = json.loads((run / "checkpoints" / "index.json").read_text())
    assert index["finished"] and max(c["step"] for c in index["checkpoints"]) == 4


@pytest.mark.slow
def test_wandb_down_falls_back_offline_with_one_warning_and_keeps_every_result(cli_trained):
    run, _, proc, wall = cli_trained
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


@pytest.mark.slow
def test_a_refused_pipeline_run_writes_nothing(cli_trained, tmp_path, monkeypatch):
    """A finished run at lr 3e-3, rerun with train.lr=0.001: refused, config.yaml untouched."""
    import inject.stage
    from core.stage_state import StageState
    from launch.pipeline import run_pipeline

    run = Path(shutil.copytree(cli_trained.run, tmp_path / "run"))
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


def _cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "launch.cli", *args], cwd=cwd, env=env(), capture_output=True,
                          text=True, timeout=300)


def test_bad_run_dirs_and_models_are_one_line(tmp_path, capsys):
    """launch.cli.main as `spikein` calls it (in process: the three refusals come before any
    worker; test_help_into_a_closed_pipe_has_no_traceback covers the entry point itself)."""
    from launch.cli import main

    afile = tmp_path / "a_file"
    afile.write_text("x")
    for args, want in ((["inject", f"run_dir={afile}"], f"run_dir={afile} is a file"),
                       (["run", f"run_dir={afile}"], f"run_dir={afile} is a file"),
                       (["audit", "model=/nonexistent", f"run_dir={tmp_path / 'r'}"],
                        "audit.model=/nonexistent: no such directory or hub id")):
        returncode = main(args)
        stderr = capsys.readouterr().err
        lines = stderr.strip().splitlines()
        assert returncode == 2 and len(lines) == 1 and lines[0].startswith("spikein: error: "), stderr
        assert want in lines[0]
    assert not (tmp_path / "r").exists()  # a refused audit leaves no run dir behind


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_a_run_dir_the_kernel_refuses_to_create_is_one_line(tmp_path, capsys):
    """/proc passes the writable check (root) but refuses mkdir: was a FileNotFoundError traceback."""
    from launch.cli import main

    assert main(["inject", "run_dir=/proc/spikein_cannot_exist/r"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("spikein: error: ") and "/proc/spikein_cannot_exist" in err, err


@pytest.mark.slow
def test_help_into_a_closed_pipe_has_no_traceback():
    proc = subprocess.run(f"{PY} -m launch.cli run --help | head -2", shell=True, cwd=REPO, env=env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.stdout.startswith("spikein run:") and len(proc.stdout.splitlines()) == 2
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
