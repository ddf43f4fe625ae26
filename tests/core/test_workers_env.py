"""How workers learn their place (srun, torchrun), and the launch commands for clusters."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.config import LauncherConfig
from core.errors import SpikeinError
from core.workers import env as wenv
from core.workers.launch import _child_env, _master, deepspeed_env_file, launcher_command, world_size


def test_srun_task_variables_become_torch_ones():
    env = {"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1", "SLURM_TASKS_PER_NODE": "4(x2)",
           "SLURM_NODEID": "1"}
    wenv.map_launcher_env(env)
    assert (env["RANK"], env["WORLD_SIZE"], env["LOCAL_RANK"], env["LOCAL_WORLD_SIZE"]) == ("5", "8", "1", "4")


def test_a_launcher_that_set_rank_wins_over_slurm():
    env = {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "SLURM_PROCID": "3", "SLURM_NTASKS": "4"}
    wenv.map_launcher_env(env)
    assert (env["RANK"], env["WORLD_SIZE"]) == ("0", "2")


def test_device_is_local_rank_modulo_visible_devices(monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "5")
    assert wenv.device_index(8) == 5
    assert wenv.device_index(1) == 0  # --gpus-per-task=1: every task sees its GPU as device 0
    assert wenv.device_index(0) == 0


def test_threads_come_from_the_cpu_mask_not_the_machine(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(os, "cpu_count", lambda: 128)
    assert wenv.cpu_threads(2) == 2
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    env = _child_env(LauncherConfig(kind="local", nproc_per_node=2), Path("/tmp"), "127.0.0.1", 1, None)
    assert env["OMP_NUM_THREADS"] == "2"


def test_srun_gets_cpus_per_task_and_a_port_of_its_job(monkeypatch):
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "6")
    monkeypatch.setenv("SLURM_JOB_ID", "123456")
    lc = LauncherConfig(kind="srun", nproc_per_node=4, num_nodes=2, master_addr="node-a")
    cmd = launcher_command("train.worker", Path("run"), lc, "node-a", 1)
    assert cmd[:5] == ["srun", "--nodes=2", "--ntasks-per-node=4", "--kill-on-bad-exit=1", "--cpus-per-task=6"]
    assert _master(lc) == ("node-a", wenv.slurm_port())
    monkeypatch.setenv("SLURM_JOB_ID", "123457")
    assert _master(lc)[1] != wenv.slurm_port({"SLURM_JOB_ID": "123456"})  # two jobs, two ports


@pytest.fixture
def hostfile(tmp_path):
    path = tmp_path / "hostfile"
    path.write_text("# two machines\nworker-0 slots=4\nworker-1 slots=2\n")
    return path


def test_deepspeed_hostfile_command_has_no_loopback_master(hostfile):
    lc = LauncherConfig(kind="deepspeed", nproc_per_node=4, hostfile=str(hostfile))
    cmd = launcher_command("train.worker", Path("rel/run"), lc, "127.0.0.1", 29500)
    assert not any(a.startswith("--master_addr") for a in cmd)
    assert f"--hostfile={hostfile}" in cmd and "--master_port=29500" in cmd
    assert cmd[-1] == str(Path("rel/run").resolve())  # remote nodes see the same absolute path
    assert not any(a.startswith(("--num_gpus", "--num_nodes")) for a in cmd)  # the hostfile decides
    lc = LauncherConfig(kind="deepspeed", hostfile=str(hostfile), master_addr="10.0.0.1", include="worker-1")
    cmd = launcher_command("train.worker", Path("run"), lc, "10.0.0.1", 29500)
    assert "--master_addr=10.0.0.1" in cmd and "--include=worker-1" in cmd


def test_world_size_comes_from_the_hostfile_slots(hostfile):
    ds = dict(kind="deepspeed", nproc_per_node=8, hostfile=str(hostfile))
    assert world_size(LauncherConfig(**ds)) == 6
    assert world_size(LauncherConfig(**ds, include="worker-1")) == 2
    assert world_size(LauncherConfig(**ds, include="worker-0:0,1@worker-1")) == 4
    assert world_size(LauncherConfig(**ds, exclude="worker-0:3")) == 5
    with pytest.raises(SpikeinError, match="launcher.hostfile=.*worker-9"):
        world_size(LauncherConfig(**ds, include="worker-9"))
    with pytest.raises(SpikeinError, match="no such file"):
        world_size(LauncherConfig(kind="deepspeed", hostfile=str(hostfile) + ".missing"))


def test_worker_variables_travel_in_the_deepspeed_env_file(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    env = {"SPIKEIN_LOG_DIR": "/shared/run/train/logs", "HF_HOME": "/shared/hf", "WANDB_MODE": "offline",
           "DS_ACCELERATOR": "cuda", "SECRET_UNRELATED": "x", "PATH": "/bin"}
    out = deepspeed_env_file(tmp_path, env)
    # where DeepSpeed's runner looks: os.path.join(<~ or .>, $DS_ENV_FILE)
    path = Path(os.path.join(os.path.expanduser("~"), out["DS_ENV_FILE"]))
    assert path == tmp_path / ".deepspeed_env"
    lines = dict(ln.split("=", 1) for ln in path.read_text().splitlines())
    assert lines == {"SPIKEIN_LOG_DIR": "/shared/run/train/logs", "HF_HOME": "/shared/hf", "WANDB_MODE": "offline",
                     "DS_ACCELERATOR": "cuda"}


def test_deepspeed_launcher_keeps_the_gpus_cuda_visible_devices_names(monkeypatch):
    """--num_gpus makes DeepSpeed's runner drop CUDA_VISIBLE_DEVICES and take GPUs 0..n-1."""
    lc = LauncherConfig(kind="deepspeed", nproc_per_node=2)
    monkeypatch.delenv("DS_ACCELERATOR", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6")
    cmd = launcher_command("train.worker", Path("run"), lc, "127.0.0.1", 29500)
    assert "--include=localhost:4,5" in cmd and not any(a.startswith("--num_gpus") for a in cmd)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4")
    with pytest.raises(SpikeinError, match="lists 1 GPU"):
        launcher_command("train.worker", Path("run"), lc, "127.0.0.1", 29500)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert "--num_gpus=2" in launcher_command("train.worker", Path("run"), lc, "127.0.0.1", 29500)
