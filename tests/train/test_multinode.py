"""Training on several "nodes" of one machine, SIGTERM preemption, resume on another world size."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from train_fixtures import make_run, read_jsonl, train_overrides, weights_hash

from core.run_dir import RunDir
from launch.config import compose
from tests.torchrun import free_port, run_nodes
from train.stage import run_train

REPO = Path(__file__).resolve().parents[2]
STEPS = ("train.max_steps=24", "train.checkpoint_every=12", "train.micro_batch=1",
         "inject.allow_untrained_copies=true", "deepspeed=zero2_cpu")


def spikein_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "launch.cli", *args]


def cli_env() -> dict[str, str]:
    return {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def one_node_two_ranks(tmp_path_factory):
    run = tmp_path_factory.mktemp("ref") / "run"
    make_run(run, n_tokens=4096)
    assert run_train(compose(train_overrides(run, *STEPS, "launcher=local", "launcher.nproc_per_node=2"))) == 0
    return run


@pytest.mark.slow
def test_two_torchrun_nodes_on_one_run_dir_train_once(tmp_path, one_node_two_ranks):
    run = tmp_path / "run"
    make_run(run, n_tokens=4096)
    port = free_port()
    common = train_overrides(run, *STEPS, "launcher=torchrun", "launcher.num_nodes=2", "launcher.nproc_per_node=1",
                             "launcher.master_addr=127.0.0.1", f"launcher.master_port={port}")
    outs = run_nodes([spikein_cmd("train", *common, f"launcher.node_rank={k}") for k in (0, 1)], REPO, cli_env(), timeout=300)
    final = lambda r: weights_hash(r / "checkpoints" / "step_24" / "hf")  # noqa: E731
    assert final(run) == final(one_node_two_ranks)
    losses = lambda r: [(x["step"], x["loss"]) for x in read_jsonl(r / "train" / "metrics.jsonl")]  # noqa: E731
    assert losses(run) == losses(one_node_two_ranks)
    logs = run / "train" / "logs"
    assert sorted(p.name for p in logs.glob("rank*.log")) == ["rank0.log", "rank1.log"]  # no rotated .log.1
    assert "already running" not in outs[1]


def test_several_torchrun_nodes_need_an_explicit_master_addr(tmp_path):
    from core.errors import SpikeinError
    from core.workers.nodes import node_group

    cfg = compose(train_overrides(tmp_path / "run", "launcher=torchrun", "launcher.num_nodes=2",
                                  "launcher.master_port=29999"))
    with pytest.raises(SpikeinError, match="launcher.master_addr"):
        with node_group(cfg.launcher):
            pass
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_the_rerun_is_exact(tmp_path, one_node_two_ranks):
    run = tmp_path / "run"
    make_run(run, n_tokens=4096)
    args = train_overrides(run, *STEPS, "launcher=local", "launcher.nproc_per_node=2")
    proc = subprocess.Popen(spikein_cmd("train", *args), cwd=REPO, env=cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    metrics = run / "train" / "metrics.jsonl"
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and len(read_jsonl(metrics)) >= 2:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)  # the scheduler's notice, to the command only (it passes it on)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 75, err[-2000:]
    lines = [ln for ln in err.splitlines() if "preempted" in ln]
    assert len(lines) == 1 and "Traceback" not in err, err[-2000:]
    stopped = int(re.search(r"at step (\d+) of 24", lines[0]).group(1))
    index = RunDir(run).read_index()
    assert not index.finished and 2 <= stopped < 24
    entry = next(c for c in index.checkpoints if c.step == stopped)
    assert entry.ds and (run / "checkpoints" / entry.ds).is_dir()
    assert index.last_step == stopped
    assert run_train(compose(args)) == 0  # the same command continues
    assert f"resuming from step {stopped}" in (run / "train" / "logs" / "rank0.log").read_text()
    final = lambda r: weights_hash(r / "checkpoints" / "step_24" / "hf")  # noqa: E731
    assert final(run) == final(one_node_two_ranks)
    losses = lambda r: [(x["step"], x["loss"]) for x in read_jsonl(r / "train" / "metrics.jsonl")]  # noqa: E731
    assert losses(run) == losses(one_node_two_ranks)


def _as_if_killed_after(run: Path, step: int) -> None:
    """The run dir a kill right after checkpoint ``step`` leaves: later checkpoints unlisted."""
    index = RunDir(run).read_index()
    for c in index.checkpoints:
        if c.step > step:
            shutil.rmtree(run / "checkpoints" / f"step_{c.step}")
    RunDir(run).write_index(index.up_to(step))


@pytest.mark.slow
def test_zero2_two_ranks_continue_on_one_through_a_universal_checkpoint(tmp_path, one_node_two_ranks):
    import torch
    from safetensors.torch import load_file

    run = tmp_path / "run"
    shutil.copytree(one_node_two_ranks, run)
    _as_if_killed_after(run, 12)
    assert run_train(compose(train_overrides(run, *STEPS, "launcher=local", "launcher.nproc_per_node=1"))) == 0
    log = (run / "train" / "logs" / "rank0.log").read_text()
    assert "written by 2 ranks, resuming on 1" in log and "resuming from step 12" in log
    assert (run / "checkpoints" / "step_12" / "ds_universal").is_dir()
    rows, ref = (read_jsonl(r / "train" / "metrics.jsonl") for r in (run, one_node_two_ranks))
    assert [r["step"] for r in rows] == [r["step"] for r in ref] == list(range(1, 25))
    assert [r["copies_seen"] for r in rows] == [r["copies_seen"] for r in ref]  # the same data, step by step
    for a, b in zip(rows[12:], ref[12:]):  # only the floating-point reduction order differs
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
    final = {r: load_file(str(r / "checkpoints" / "step_24" / "hf" / "model.safetensors")) for r in (run, one_node_two_ranks)}
    for name, tensor in final[run].items():
        torch.testing.assert_close(tensor, final[one_node_two_ranks][name], rtol=1e-4, atol=1e-5)
    assert RunDir(run).read_index().finished


@pytest.fixture
def small_disk(tmp_path):
    """A 900 KiB tmpfs: room for the data and two checkpoints of the tiny run, not three."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=900k", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True)


@pytest.mark.slow
def test_a_full_disk_ends_the_command_with_one_line_naming_it(small_disk):
    run = small_disk / "run"
    make_run(run, n_tokens=4096)
    args = train_overrides(run, "train.max_steps=6", "train.checkpoint_every=3", "train.micro_batch=1",
                           "inject.allow_untrained_copies=true", "launcher=local", "launcher.nproc_per_node=2")
    r = subprocess.run(spikein_cmd("train", *args), cwd=REPO, env=cli_env(), capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 2
    assert "Traceback" not in r.stdout + r.stderr and "[rank0]" not in r.stderr, r.stderr[-3000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("spikein: error: train.worker rank") and "No space left on device" in last
    assert str(run) in last
    assert "Traceback" in (run / "train" / "logs" / "rank0.log").read_text()


def test_fault_cause_names_the_os_error_in_the_chain(tmp_path):
    import errno

    from core.workers.faults import fault_cause

    try:
        try:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), "/shared/run/checkpoints/x.pt")
        except OSError:
            raise RuntimeError("PytorchStreamWriter failed writing file")  # noqa: B904  (the chained cause is the point)
    except RuntimeError as e:
        assert fault_cause(e, tmp_path) == "Read-only file system: /shared/run/checkpoints/x.pt"
    assert fault_cause(ValueError("a bug"), tmp_path) is None  # a healthy filesystem: not a fault
    assert "No such file" in fault_cause(ValueError("x"), tmp_path / "gone" / "run")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1])
def test_a_scheduler_signal_is_noted_not_fatal(sig):
    from train.loop import PREEMPT_SIGNALS, PreemptionSignal

    previous = {s: signal.getsignal(s) for s in PREEMPT_SIGNALS}
    try:
        notice = PreemptionSignal()
        os.kill(os.getpid(), sig)  # SLURM: SIGTERM at the end, SIGUSR1 with --signal=USR1@120
        assert notice.received == sig
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
