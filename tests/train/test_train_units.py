"""Train-stage pieces without DeepSpeed: budget, schedule, loader, DS JSON, checkpoints index, launcher."""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from core.budget import resolve_budget, step_law_batch_tokens, step_law_lr
from core.checkpoint_index import Checkpoint, CheckpointIndex
from core.config import DeepSpeedConfig, LoggerConfig, ModelConfig, TrainConfig
from core.errors import SpikeinError
from core.run_dir import RunDir
from core.workers.launch import failure_message, launch_workers, launcher_command
from train import checkpoint as ckpt
from train.data import StreamBatches, take_tokens
from train.ds_config import build_ds_config
from train.schedule import lr_factor
from train.settings import TrainSettings

TRAIN = {"seq_len": 32, "global_batch": 8, "micro_batch": 2, "max_steps": None, "max_tokens": None,
         "lr": 1e-3, "batch_tokens": None, "warmup_steps": 5}


def budget(**over):
    kw = dict(stream_tokens=32 * 8 * 10, n_params=10**6, world_size=2, from_scratch=True)
    train = {**TRAIN, **{k: v for k, v in over.items() if k not in kw}}
    kw.update({k: v for k, v in over.items() if k in kw})
    return resolve_budget(TrainConfig(**train), **kw)


def test_step_law_formulas():
    n, d = 10**8, 10**10
    assert step_law_lr(n, d) == pytest.approx(1.79 * n**-0.713 * d**0.307)
    assert step_law_batch_tokens(d) == pytest.approx(0.58 * d**0.571)
    # bigger models want smaller lr, more data bigger batches
    assert step_law_lr(10**9, d) < step_law_lr(n, d)
    assert step_law_batch_tokens(10 * d) > step_law_batch_tokens(d)


def test_budget_one_pass_by_default_and_max_tokens_rounds_up():
    b = budget()
    assert (b.global_batch, b.max_steps, b.lr, b.warmup_steps, b.step_law) == (8, 10, 1e-3, 5, None)
    assert budget(max_tokens=32 * 8 * 3 + 1).max_steps == 4
    assert budget(max_steps=25).max_steps == 25  # more than the stream: epochs
    assert budget(max_steps=3).warmup_steps == 3


def test_budget_auto_uses_step_law_on_the_planned_tokens():
    d = 2_000_000
    b = budget(lr="auto", batch_tokens="auto", max_tokens=d)
    want_seqs = step_law_batch_tokens(d) / 32
    assert b.global_batch % 4 == 0 and abs(b.global_batch - want_seqs) <= 2
    trained = b.max_steps * b.global_batch * 32
    assert trained >= d
    assert b.lr == pytest.approx(step_law_lr(10**6, trained))
    assert b.step_law["batch_tokens"] == pytest.approx(step_law_batch_tokens(d))
    assert "Step Law" in b.describe(32)


@pytest.mark.parametrize("over, message", [
    ({"global_batch": 6}, "not a multiple of micro_batch x world size"),
    ({"lr": "auto", "from_scratch": False}, "for from-scratch runs"),
    ({"batch_tokens": "auto", "max_steps": 10}, "needs the budget in tokens"),
    ({"stream_tokens": 100}, "fewer than one global batch"),
    ({"lr": 0}, "must be positive"),
])
def test_budget_errors_are_one_line(over, message):
    with pytest.raises(SpikeinError, match=message) as e:
        budget(**over)
    assert "\n" not in str(e.value)


def test_lr_schedule_warms_up_linearly_then_decays_to_the_floor():
    f = [lr_factor(s, warmup=4, total=20, min_ratio=0.1) for s in range(20)]
    assert f[:4] == [0.25, 0.5, 0.75, 1.0]
    assert f[4] == 1.0 and f[-1] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(f[4:], f[5:]))
    assert lr_factor(0, warmup=0, total=5, min_ratio=0.0) == 1.0


def test_loader_ranks_tile_each_global_batch_in_order():
    stream = np.arange(1000, dtype=np.uint16)
    seq, gb, mb, world = 4, 8, 2, 2
    loaders = [StreamBatches(stream, seq_len=seq, global_batch=gb, micro_batch=mb, rank=r,
                             world_size=world, vocab_size=1000) for r in range(world)]
    for step in (0, 3):
        got = np.concatenate([x.numpy().ravel() for ld in loaders for x in ld.step_batches(step)])
        start = step * gb * seq
        assert got.tolist() == list(range(start, start + gb * seq))
    assert loaders[0].accumulation == 2


def test_loader_wraps_into_the_next_epoch_and_checks_the_vocabulary():
    stream = np.arange(10, dtype=np.uint16)
    assert take_tokens(stream, 8, 5).tolist() == [8, 9, 0, 1, 2]
    assert take_tokens(stream, 23, 3).tolist() == [3, 4, 5]
    ld = StreamBatches(stream, seq_len=4, global_batch=2, micro_batch=2, rank=0, world_size=1, vocab_size=5)
    with pytest.raises(SpikeinError, match="outside the model's 5-token vocabulary"):
        ld.step_batches(0)


def _settings(tmp_path, **ds) -> TrainSettings:
    return TrainSettings(
        run_dir=str(tmp_path), experiment_name="t", seed=1, model=ModelConfig(name="m", config={}),
        train=TrainConfig(precision="fp32", grad_clip=1.0, weight_decay=0.1, betas=[0.9, 0.95], seed=1),
        deepspeed=DeepSpeedConfig(**{"zero_stage": 2, "torch_adam": True, "backend": "gloo", "user_json": None, **ds}),
        logger=LoggerConfig(mode="disabled"), seq_len=32, global_batch=8, micro_batch=2, world_size=2, max_steps=10, lr=1e-3,
        warmup_steps=0, n_params=100, data_hash="d")


def test_ds_config_generated_and_user_json(tmp_path):
    cfg = build_ds_config(_settings(tmp_path), world_size=2)
    assert (cfg["train_batch_size"], cfg["train_micro_batch_size_per_gpu"], cfg["gradient_accumulation_steps"]) == (8, 2, 2)
    assert cfg["optimizer"]["params"]["torch_adam"] is True and cfg["zero_optimization"]["stage"] == 2
    assert cfg["bf16"]["enabled"] is False and cfg["gradient_clipping"] == 1.0
    extra = build_ds_config(_settings(tmp_path, extra={"zero_optimization": {"overlap_comm": True}}), 2)
    assert extra["zero_optimization"] == {"stage": 2, "overlap_comm": True}
    user = tmp_path / "ds.json"
    user.write_text(json.dumps({"train_batch_size": "auto", "zero_optimization": {"stage": 1}, "gradient_clipping": 0.5}))
    merged = build_ds_config(_settings(tmp_path, user_json=str(user)), 2)
    assert merged["zero_optimization"]["stage"] == 1 and merged["gradient_clipping"] == 0.5
    assert merged["train_batch_size"] == 8
    user.write_text(json.dumps({"train_batch_size": 16}))
    with pytest.raises(SpikeinError, match="train_batch_size=16 disagrees"):
        build_ds_config(_settings(tmp_path, user_json=str(user)), 2)


def test_trajectory_hash_ignores_logging_but_not_learning_rate(tmp_path):
    a = _settings(tmp_path)
    b = _settings(tmp_path)
    b.train = dataclasses.replace(b.train, log_every=1, checkpoint_every=3, keep_last=5, checkpoint_steps=[1, 4])
    assert a.trajectory_hash() == b.trajectory_hash()
    b.lr = 2e-3
    assert a.trajectory_hash() != b.trajectory_hash()


def _fake_checkpoint(run: Path, step: int, keep_last: int = 2, keep_hf: str = "all", ds: bool = True) -> None:
    root = RunDir(run).checkpoints
    (root / f"step_{step}" / "hf").mkdir(parents=True)
    if ds:
        (root / f"step_{step}" / "ds").mkdir()
    entry = Checkpoint(step, step * 10, 0.0, f"step_{step}/hf", f"step_{step}/ds" if ds else None)
    ckpt._publish(run, entry, keep_last, keep_hf)


def test_index_prunes_old_states_and_ignores_incomplete_checkpoints(tmp_path):
    RunDir(tmp_path).write_index(CheckpointIndex.new(32, 8))
    _fake_checkpoint(tmp_path, 0, ds=False)
    for step in (10, 20, 30):
        _fake_checkpoint(tmp_path, step)
    index = RunDir(tmp_path).read_index()
    assert [c.step for c in index.checkpoints] == [0, 10, 20, 30]
    assert [c.ds for c in index.checkpoints] == [None, None, "step_20/ds", "step_30/ds"]
    root = RunDir(tmp_path).checkpoints
    assert not (root / "step_10" / "ds").exists() and (root / "step_10" / "hf").exists()
    assert index.tokens_per_step == 256 and index.finished is False
    # killed mid-write: a temp dir and a renamed dir the index never listed
    (root / ".step_40.tmp" / "ds").mkdir(parents=True)
    (root / "step_50" / "ds").mkdir(parents=True)
    assert ckpt.latest_resumable(tmp_path).step == 30
    (root / "step_30" / "ds").rmdir()  # a listed state that vanished is skipped too
    assert ckpt.latest_resumable(tmp_path).step == 20
    ckpt.remove_stale_temps(tmp_path)
    assert not (root / ".step_40.tmp").exists()
    _fake_checkpoint(tmp_path, 60, keep_hf="last")
    index = RunDir(tmp_path).read_index()
    assert [c.hf for c in index.checkpoints][-1] == "step_60/hf"
    assert all(c.hf is None for c in index.checkpoints[:-1])
    assert not (root / "step_0").exists()  # neither hf nor ds left: dropped


def test_launcher_commands():
    lc = {"kind": "torchrun", "nproc_per_node": 4, "num_nodes": 2, "node_rank": 1}
    cmd = launcher_command("train.worker", Path("/r"), lc, "10.0.0.1", 29555)
    assert cmd[1:4] == ["-P", "-m", "torch.distributed.run"] and "--nnodes=2" in cmd and "--node_rank=1" in cmd
    assert cmd[-6:] == ["--no-python", sys.executable, "-P", "-m", "train.worker", "/r"]  # cwd never on sys.path
    ds = launcher_command("audit.worker", Path("/r"), {"kind": "deepspeed", "nproc_per_node": 2, "hostfile": "h",
                                                       "num_nodes": 2}, "a", 1)
    assert "--no_local_rank" in ds and f"--hostfile={Path('h').resolve()}" in ds and ds[-2:] == ["audit.worker", "/r"]
    srun = launcher_command("train.worker", Path("/r"), {"kind": "srun", "nproc_per_node": 8, "num_nodes": 2}, "a", 1)
    assert srun[0] == "srun" and "--ntasks-per-node=8" in srun and srun[-4:] == ["-P", "-m", "train.worker", "/r"]
    with pytest.raises(SpikeinError, match="unknown launcher.kind 'mpi'"):
        launcher_command("m", Path("/r"), {"kind": "mpi"}, "a", 1)


DUMMY = '''
import os, sys, time
from core.workers.process import run_worker, log
from core.errors import SpikeinError

def main(run_dir):
    rank = os.environ["RANK"]
    log.info("hello from rank %s of %s", rank, os.environ["WORLD_SIZE"])
    if rank == "1":
        if (run_dir / "user_error").exists():
            raise SpikeinError("bad thing in rank one's input")
        raise RuntimeError("boom on purpose")
    time.sleep(60)  # rank 0 would wait forever: the launcher must stop it

if __name__ == "__main__":
    run_worker(main, prefix="dummy")
'''


@pytest.fixture
def dummy_worker(tmp_path):
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "dummy_worker.py").write_text(DUMMY)
    run = tmp_path / "run"
    run.mkdir()
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path / "mods"), *sys.path])}
    return run, env


@pytest.mark.slow
def test_failing_rank_is_named_with_its_last_log_lines_and_the_others_stopped(dummy_worker):
    run, env = dummy_worker
    t0 = time.time()
    with pytest.raises(SpikeinError) as e:
        launch_workers("dummy_worker", run, {"kind": "local", "nproc_per_node": 2}, env=env)
    msg = str(e.value)
    assert "dummy_worker rank 1 failed: RuntimeError: boom on purpose" in msg
    assert "hello from rank 1 of 2" in msg and "\n" not in msg
    assert time.time() - t0 < 30  # rank 0 was stopped, not waited for
    assert "hello from rank 0" in (run / "logs" / "dummy_worker" / "rank0.log").read_text()


@pytest.mark.slow
def test_a_user_error_in_a_worker_comes_back_as_is(dummy_worker):
    run, env = dummy_worker
    (run / "user_error").touch()
    with pytest.raises(SpikeinError, match=r"^dummy_worker rank 1: bad thing in rank one's input \(log: "):
        launch_workers("dummy_worker", run, {"kind": "local", "nproc_per_node": 2}, env=env)


def test_failure_without_marker_names_the_signal(tmp_path):
    (tmp_path / "rank1.log").write_text("step 3\nstep 4\n")
    msg = failure_message(tmp_path, "train.worker", (1, -9))
    assert msg.startswith("train.worker rank 1 was killed by signal 9; last log lines: step 3 | step 4")
    tail = [b"...Root Cause (first observed failure):\n[0]:\n  rank      : 1 (local_rank: 1)\n"]
    assert "rank 1 exited with code 1" in failure_message(tmp_path, "train.worker", (None, 1), tail)


def test_bf16_gradients_reduced_and_accumulated_in_fp32(tmp_path):
    def bf16(stage):
        s = _settings(tmp_path, zero_stage=stage)
        s.train.precision = "bf16"
        return build_ds_config(s, world_size=2)

    for stage in (1, 2, 3):
        cfg = bf16(stage)
        assert cfg["communication_data_type"] == "fp32" and cfg["data_types"] == {"grad_accum_dtype": "fp32"}
    assert bf16(0)["communication_data_type"] == "fp32" and "data_types" not in bf16(0)  # DeepSpeed: no fp32 accum at ZeRO-0
    assert "communication_data_type" not in build_ds_config(_settings(tmp_path), 2)  # fp32 training: nothing to say


@pytest.mark.parametrize("precision, backend, fused, cuda, accel, match", [
    ("bf16", "gloo", False, True, None, "would train on the CPUs although a GPU is visible"),
    ("fp32", "gloo", True, True, None, "deepspeed.fused=true is a GPU kernel"),
    ("bf16", "nccl", True, False, None, "deepspeed.backend=nccl needs a GPU"),
    ("bf16", "gloo", False, True, "cpu", None),  # DS_ACCELERATOR=cpu: the CPUs on purpose
    ("bf16", "gloo", False, False, None, None),  # no GPU: bf16 on the CPUs is all there is
    ("bf16", "nccl", True, True, None, None),
])
def test_gpu_config_with_a_cpu_backend_is_refused(precision, backend, fused, cuda, accel, match):
    from train.ds_config import check_backend

    if match is None:
        check_backend(precision, backend, fused, cuda, accel)
    else:
        with pytest.raises(SpikeinError, match=match):
            check_backend(precision, backend, fused, cuda, accel)


def test_mfu_peak_from_the_gpu_name_and_precision():
    from train.metrics import peak_flops

    assert peak_flops({}, "cuda", "NVIDIA H200", "bf16") == 989e12
    assert peak_flops({}, "cuda", "NVIDIA H100 PCIe", "bf16") == 756e12
    assert peak_flops({}, "cuda", "NVIDIA H100 80GB HBM3", "fp32") == 67e12
    assert peak_flops({}, "cuda", "NVIDIA A100-SXM4-80GB", "bf16") == 312e12
    assert peak_flops({"cuda": 5e14}, "cuda", "NVIDIA H200", "bf16") == 5e14  # the config overrides
    assert peak_flops({"cpu": 1e12}, "cpu", "", "fp32") == 1e12
    assert peak_flops({}, "cuda", "Some Future GPU", "bf16") == 0.0  # unknown: no MFU rather than a wrong one


def test_keys_added_at_their_defaults_keep_old_trajectory_hashes(tmp_path):
    """Run dirs trained before train.loss_chunk_tokens / model.arch existed stay resumable:
    at their defaults those keys are not part of the trajectory; a chunk size is."""
    a = _settings(tmp_path)
    t = a.trajectory()
    assert "loss_chunk_tokens" not in t["train"] and "arch" not in t["model"]
    b = _settings(tmp_path)
    b.model = dataclasses.replace(b.model, arch={"hidden_size": 64})
    assert a.trajectory_hash() == b.trajectory_hash()
    b.train = dataclasses.replace(b.train, loss_chunk_tokens=128)
    assert a.trajectory_hash() != b.trajectory_hash()
