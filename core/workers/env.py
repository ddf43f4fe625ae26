"""How a worker learns its place from whatever started it: one mapping for every worker.

torchrun and the deepspeed launcher set RANK / WORLD_SIZE / LOCAL_RANK / LOCAL_WORLD_SIZE
(what ``torch.distributed``'s ``env://`` init reads); ``srun`` without torchrun sets only
SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID. :func:`map_launcher_env` turns the latter into
the former, so training and audit workers read one set of variables. It runs first thing
in :func:`core.workers.process.run_worker`, before anything reads RANK.
"""
from __future__ import annotations

import os
import re
from typing import MutableMapping

SLURM_TO_TORCH = (("SLURM_PROCID", "RANK"), ("SLURM_NTASKS", "WORLD_SIZE"), ("SLURM_LOCALID", "LOCAL_RANK"))


def map_launcher_env(environ: MutableMapping[str, str] | None = None) -> None:
    """srun without torchrun: the SLURM task variables become torch's (RANK etc.); a
    launcher that already set RANK (torchrun, deepspeed, our local launcher) wins."""
    env = os.environ if environ is None else environ
    if "RANK" in env or "SLURM_PROCID" not in env:
        return
    for slurm, torch_name in SLURM_TO_TORCH:
        env[torch_name] = env.get(slurm, "0")
    local = slurm_tasks_on_this_node(env)
    if local is not None:
        env.setdefault("LOCAL_WORLD_SIZE", str(local))


def slurm_tasks_on_this_node(env: MutableMapping[str, str]) -> int | None:
    """SLURM_NTASKS_PER_NODE, else this node's entry of SLURM_TASKS_PER_NODE ("8(x2),4")."""
    if env.get("SLURM_NTASKS_PER_NODE", "").isdigit():
        return int(env["SLURM_NTASKS_PER_NODE"])
    per_node = []
    for count, repeat in re.findall(r"(\d+)(?:\(x(\d+)\))?", env.get("SLURM_TASKS_PER_NODE", "")):
        per_node += [int(count)] * int(repeat or 1)
    node = int(env.get("SLURM_NODEID", "0") or 0)
    return per_node[node] if node < len(per_node) else None


def env_rank() -> int:
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def device_index(n_devices: int | None = None) -> int:
    """This rank's accelerator: LOCAL_RANK modulo the visible devices, so a task that sees
    one GPU (``--gpus-per-task``, GPU binding) uses device 0 and 8 tasks on 8 GPUs one each."""
    if n_devices is None:
        import torch

        n_devices = torch.cuda.device_count()
    return local_rank() % n_devices if n_devices > 0 else 0


def cpu_threads(procs_per_node: int) -> int:
    """Threads per rank: the CPUs this process may run on (its affinity mask, which srun
    and cgroups narrow), shared among the node's ranks."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, cpus // max(1, procs_per_node))


def slurm_cpus_per_task(env: MutableMapping[str, str] | None = None) -> int | None:
    """The allocation's CPUs per task (SLURM_CPUS_PER_TASK), when sbatch was given one."""
    env = os.environ if env is None else env
    value = env.get("SLURM_CPUS_PER_TASK", "")
    return int(value) if value.isdigit() and int(value) > 0 else None


def slurm_port(env: MutableMapping[str, str] | None = None) -> int | None:
    """A master port of this job's own: two jobs on one node get different ports."""
    env = os.environ if env is None else env
    job = env.get("SLURM_JOB_ID", "")
    return 15000 + int(job) % 20000 if job.isdigit() else None
