"""Start the worker processes of a distributed stage and wait for them.

``launch_workers(module, run_dir, cfg.launcher)`` runs ``python -m <module> <run_dir>``
on every rank; workers read their settings from the run dir, never from the command
line, so the same call serves training and data-parallel audit scoring.

kinds (``cfg.launcher.kind``):

- ``local``: ``nproc_per_node`` processes started here, RANK / WORLD_SIZE /
  LOCAL_RANK / MASTER_ADDR / MASTER_PORT set by us (one machine).
- ``torchrun``: ``torch.distributed.run``; several nodes: run the same
  ``spikein`` command on every node with ``launcher.num_nodes=M launcher.node_rank=k
  launcher.master_addr=<node 0> launcher.master_port=<port>``: node 0's command owns the
  run dir, the others follow it (:mod:`core.workers.nodes`); workers use ``<port> + 1``.
- ``deepspeed``: ``deepspeed --no_local_rank``; several nodes: ``launcher.hostfile=<file>``
  (``host slots=N`` lines, passwordless ssh, the run dir on a shared filesystem),
  started once from the first node; the world size is the hostfile's slots, the workers'
  variables travel in ``.deepspeed_env``.
- ``srun`` (SLURM): inside an allocation, e.g.
  ``sbatch -N 2 --ntasks-per-node=8 --gpus-per-node=8 --wrap "spikein train launcher=slurm
  launcher.num_nodes=2 launcher.nproc_per_node=8"``; one ``srun`` task per GPU, the
  first allocated host is the master. (Hydra sweeps on SLURM: ``hydra/launcher=submitit_slurm``.)

A scheduler's SIGTERM / SIGUSR1 to this process is passed on to the workers: training saves
a checkpoint at the step it is on and the command ends with :class:`core.errors.Preempted`
(exit status 75). A worker that dies of a filesystem fault is named with its cause and path.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

from core.checks import choices
from core.config import LauncherConfig, LauncherKind, typed_section
from core.errors import Preempted, SpikeinError
from core.run_dir import RunDir
from core.workers import nodes
from core.workers.env import cpu_threads, slurm_cpus_per_task, slurm_port
from core.workers.faults import filesystem_fault

KINDS = choices(LauncherKind)
# The folder holding spikein's packages: workers import from here, never from the working
# directory (a user's train.py or audit/ there would otherwise shadow ours).
SPIKEIN_ROOT = Path(__file__).resolve().parents[2]
PR_SET_PDEATHSIG = 1


def python_command(module: str, run_dir: Path) -> list[str]:
    """``python -P -m module run_dir``: -P keeps the working directory off sys.path."""
    return [sys.executable, "-P", "-m", module, str(run_dir)]


def launcher_config(launcher_cfg: LauncherConfig | Mapping[str, Any]) -> LauncherConfig:
    return typed_section(LauncherConfig, launcher_cfg)


def world_size(launcher_cfg: LauncherConfig | Mapping[str, Any]) -> int:
    lc = launcher_config(launcher_cfg)
    if lc.kind == "deepspeed" and lc.hostfile:
        return sum(len(slots) for slots in hostfile_hosts(lc).values())
    return lc.nproc_per_node * lc.num_nodes


def hostfile_hosts(lc: LauncherConfig) -> dict[str, list[int]]:
    """The hosts and slots the deepspeed launcher will use: the hostfile's ``host slots=N``,
    filtered by ``launcher.include`` / ``exclude`` or cut to the first ``num_nodes`` hosts,
    by DeepSpeed's own parser (so the plan and the launch agree)."""
    from deepspeed.launcher.runner import apply_num_nodes_and_gpus, fetch_hostfile, parse_inclusion_exclusion

    path = Path(str(lc.hostfile)).expanduser()
    if not path.is_file():
        raise SpikeinError(f"launcher.hostfile={lc.hostfile}: no such file")
    try:
        pool = fetch_hostfile(str(path))
        if not pool:
            raise ValueError("no 'host slots=N' line")
        hosts = parse_inclusion_exclusion(pool, lc.include or "", lc.exclude or "")
    except ValueError as e:
        raise SpikeinError(f"launcher.hostfile={lc.hostfile}: {e}") from None
    if lc.num_nodes > 1 and not (lc.include or lc.exclude):
        hosts = apply_num_nodes_and_gpus(hosts, lc.num_nodes, -1)
    if not hosts:
        raise SpikeinError(f"launcher.hostfile={lc.hostfile}: launcher.include/exclude leave no host")
    return dict(hosts)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _master(lc: LauncherConfig) -> tuple[str, int]:
    addr = str(lc.master_addr or "127.0.0.1")
    if lc.kind == "srun" and os.environ.get("SLURM_JOB_NODELIST") and not lc.master_addr:
        hosts = subprocess.run(["scontrol", "show", "hostnames", os.environ["SLURM_JOB_NODELIST"]],
                               capture_output=True, text=True, check=True).stdout.split()
        addr = hosts[0]
    port = lc.master_port
    if port in (None, "", 0, "auto") and lc.kind == "srun":
        port = slurm_port()  # two jobs on one node must not share a port
    if port in (None, "", 0, "auto"):
        if lc.num_nodes > 1:
            raise SpikeinError("set launcher.master_port for a multi-node run (every node must agree)")
        port = free_port()
    return addr, int(port)


def launcher_command(module: str, run_dir: Path, launcher_cfg: LauncherConfig | Mapping[str, Any], addr: str,
                     port: int) -> list[str]:
    """The one command that starts all local ranks (torchrun / deepspeed / srun)."""
    lc = launcher_config(launcher_cfg)
    n, nodes, kind = lc.nproc_per_node, lc.num_nodes, lc.kind
    if kind == "torchrun":  # --no-python: torchrun starts our exact command, -P included
        return [sys.executable, "-P", "-m", "torch.distributed.run", f"--nproc_per_node={n}", f"--nnodes={nodes}",
                f"--node_rank={lc.node_rank}", f"--master_addr={addr}", f"--master_port={port}",
                "--no-python", *python_command(module, run_dir)]
    if kind == "deepspeed":  # its `python -u -m module` is kept safe by PYTHONSAFEPATH in the env
        return _deepspeed_command(module, run_dir, lc, port)
    if kind == "srun":
        cpus = slurm_cpus_per_task()  # srun does not inherit sbatch's --cpus-per-task (Slurm >= 22.05)
        return ["srun", f"--nodes={nodes}", f"--ntasks-per-node={n}", "--kill-on-bad-exit=1",
                *([f"--cpus-per-task={cpus}"] if cpus else []), *python_command(module, run_dir)]
    raise SpikeinError(f"unknown launcher.kind '{kind}'; choose one of: {', '.join(KINDS)}")


def _deepspeed_command(module: str, run_dir: Path, lc: LauncherConfig, port: int) -> list[str]:
    """No --master_addr unless the user set one: DeepSpeed then asks the first host of the
    hostfile for its address (a loopback address would send remote ranks to themselves)."""
    cmd = [sys.executable, "-P", "-m", "deepspeed.launcher.runner", "--no_local_rank", "--module",
           f"--master_port={port}", "--log_level=warning"]
    if lc.master_addr:
        cmd.append(f"--master_addr={lc.master_addr}")
    if lc.hostfile:  # remote nodes run in this directory: absolute paths only
        cmd.append(f"--hostfile={Path(str(lc.hostfile)).expanduser().resolve()}")
        if lc.include or lc.exclude:
            cmd.append(f"--include={lc.include}" if lc.include else f"--exclude={lc.exclude}")
        elif lc.num_nodes > 1:
            cmd.append(f"--num_nodes={lc.num_nodes}")
        run_dir = Path(run_dir).resolve()
    else:
        cmd.append(_local_gpus(lc.nproc_per_node))
    return cmd + [module, str(run_dir)]


def _local_gpus(n: int) -> str:
    """``--num_gpus=n``, or the first n GPUs of CUDA_VISIBLE_DEVICES as ``--include``: given
    --num_gpus, DeepSpeed's runner drops that variable and takes GPUs 0..n-1, another job's
    on a shared node."""
    visible = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    if not visible or os.environ.get("DS_ACCELERATOR") == "cpu" or not all(d.isdigit() for d in visible):
        return f"--num_gpus={n}"  # none set, CPU ranks, or UUIDs (which --include cannot name)
    if n > len(visible):
        raise SpikeinError(f"launcher.nproc_per_node={n} but CUDA_VISIBLE_DEVICES={','.join(visible)} "
                           f"lists {len(visible)} GPU(s)")
    return f"--include=localhost:{','.join(visible[:n])}"


# Variables the workers need that DeepSpeed's pdsh runner does not forward to remote nodes
# (it forwards PYTHON*, NCCL*, ... only): they travel in its environment file.
WORKER_ENV_PREFIXES = ("SPIKEIN_", "HF_", "WANDB_", "TRANSFORMERS_", "TOKENIZERS_", "DS_ACCELERATOR",
                       "OMP_NUM_THREADS", "CUDA_", "TORCH_")


def deepspeed_env_file(log_dir: Path, env: Mapping[str, str]) -> dict[str, str]:
    """Write ``<log_dir>/.deepspeed_env`` (KEY=VALUE lines, the user's ~/.deepspeed_env
    first) and return ``env`` with DS_ENV_FILE naming it, where DeepSpeed's runner looks."""
    from core.atomic import write_text

    lines = []
    for own in (Path.home() / ".deepspeed_env", Path(".deepspeed_env")):
        if own.is_file():
            lines += [ln for ln in own.read_text().splitlines() if "=" in ln]
    lines += [f"{k}={v}" for k, v in sorted(env.items())
              if k.startswith(WORKER_ENV_PREFIXES) and "\n" not in v]
    path = log_dir / ".deepspeed_env"
    write_text(path, "\n".join(lines) + "\n")
    return {**env, "DS_ENV_FILE": str(path.resolve())}  # absolute: os.path.join keeps it as is


def _child_env(lc: LauncherConfig, log_dir: Path, addr: str, port: int,
               extra: Mapping[str, str] | None) -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1", SPIKEIN_LOG_DIR=str(log_dir), PYTHONSAFEPATH="1",
               MASTER_ADDR=addr, MASTER_PORT=str(port), **(extra or {}))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SPIKEIN_ROOT), env.get("PYTHONPATH")) if p)
    n = lc.nproc_per_node
    if n > 1 and "OMP_NUM_THREADS" not in env:  # share the cores instead of oversubscribing
        cpus = slurm_cpus_per_task() if lc.kind == "srun" else None  # each task gets its own CPUs there
        env["OMP_NUM_THREADS"] = str(cpus or cpu_threads(n))
    return env


def launch_workers(module: str, run_dir: str | Path, launcher_cfg: LauncherConfig | Mapping[str, Any], *,
                   log_dir: str | Path | None = None, env: Mapping[str, str] | None = None) -> None:
    """Run ``python -m module run_dir`` on every rank; SpikeinError naming the rank that failed."""
    run_dir = Path(run_dir)
    lc = launcher_config(launcher_cfg)
    log_dir = Path(log_dir or RunDir(run_dir).worker_logs(module.split(".")[0]))
    new_attempt(log_dir)
    addr, port = _master(lc)
    port = nodes.worker_port(lc, port)
    group = nodes.current()
    if group is not None:  # several torchrun nodes: the others start their share now
        group.announce(module, str(log_dir), env)
    child_env = _child_env(lc, log_dir, addr, port, env)
    _run(module, run_dir, lc, log_dir, addr, port, child_env)


def launch_share(module: str, run_dir: str | Path, launcher_cfg: LauncherConfig | Mapping[str, Any],
                 log_dir: str | Path, env: Mapping[str, str] | None = None) -> None:
    """A node ``node_rank > 0``: this node's workers of a launch node 0 announced (logs
    as node 0 rotated them, nothing else written)."""
    lc, log_dir = launcher_config(launcher_cfg), Path(log_dir)
    addr, port = _master(lc)
    port = nodes.worker_port(lc, port)
    child_env = _child_env(lc, log_dir, addr, port, env)
    _run(module, Path(run_dir), lc, log_dir, addr, port, child_env)


def new_attempt(log_dir: Path) -> None:
    """Rank logs are per attempt: the previous attempt's logs become ``rank<r>.log.1``, and
    its error and done markers go, so a failure message never quotes an earlier run."""
    log_dir.mkdir(parents=True, exist_ok=True)
    for stale in [*log_dir.glob("rank*.error"), *log_dir.glob("rank*.done"), *log_dir.glob("rank*.preempted")]:
        stale.unlink()
    for old in log_dir.glob("rank*.log"):
        old.replace(old.with_name(old.name + ".1"))


PREEMPT_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)  # a scheduler's notice (SLURM: time limit, preemption)


@contextmanager
def _signals_passed_on(children: list[subprocess.Popen], kind: str) -> Iterator[None]:
    """A scheduler's SIGTERM / SIGUSR1 goes on to the workers, which finish the step, save a
    checkpoint and stop (train/loop.py); we keep waiting for them. A second one, or SIGHUP
    (a closed terminal), stops them now."""
    notices: list[int] = []

    def pass_on(signum, frame):
        if notices:
            raise KeyboardInterrupt(f"signal {signum}")
        notices.append(signum)
        # torchrun's agent passes SIGTERM on to its workers (SIGUSR1 would kill it)
        sig = signal.SIGTERM if kind == "torchrun" else signum
        for p in children:
            if p.poll() is None:
                p.send_signal(sig)

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        previous = {sig: signal.signal(sig, pass_on) for sig in PREEMPT_SIGNALS}
        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def die_with_parent() -> None:
    """Linux: SIGTERM this process when its parent dies (even by SIGKILL), so no worker or
    launcher outlives the `spikein` that started it. Kept across exec; elsewhere a no-op."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _run(module: str, run_dir: Path, lc: LauncherConfig, log_dir: Path, addr: str, port: int,
         child_env: dict[str, str]) -> None:
    if lc.kind == "local":
        if lc.num_nodes != 1:
            raise SpikeinError("launcher.kind=local runs on one machine; use torchrun, deepspeed or srun "
                               "for launcher.num_nodes > 1")
        procs: list[subprocess.Popen] = []
        with _signals_passed_on(procs, lc.kind):
            procs += _start_local(module, run_dir, lc.nproc_per_node, child_env)
            failed = _wait_all(procs)
        _check_preempted(log_dir)
        if failed is not None:
            raise SpikeinError(failure_message(log_dir, module, failed))
        _check_done(log_dir, module, len(procs))
        return
    cmd = launcher_command(module, run_dir, lc, addr, port)
    if shutil.which(cmd[0]) is None and not os.path.exists(cmd[0]):
        raise SpikeinError(f"launcher.kind={lc.kind}: '{cmd[0]}' not found on PATH")
    if lc.kind == "deepspeed" and lc.hostfile:
        child_env = deepspeed_env_file(log_dir, child_env)
    children: list[subprocess.Popen] = []
    with _signals_passed_on(children, lc.kind):
        proc = subprocess.Popen(cmd, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                preexec_fn=die_with_parent)
        children.append(proc)
        tail, pump = _relay(proc)
        code = _wait_one(proc)
    pump.join(timeout=10)  # the launcher's last words
    _check_preempted(log_dir)
    if code != 0:
        raise SpikeinError(failure_message(log_dir, module, (None, code), tail))


def _start_local(module: str, run_dir: Path, n: int, env: dict[str, str]) -> list[subprocess.Popen]:
    procs = []
    for rank in range(n):
        rank_env = dict(env, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(n),
                        LOCAL_WORLD_SIZE=str(n), GROUP_RANK="0")
        procs.append(subprocess.Popen(python_command(module, run_dir), env=rank_env, preexec_fn=die_with_parent))
    return procs


def _check_preempted(log_dir: Path) -> None:
    """Workers that stopped on a scheduler's signal after saving: one line, exit status 75."""
    markers = sorted(log_dir.glob("rank*.preempted"))
    if markers:
        raise Preempted(json.loads(markers[0].read_text())["message"])


def _check_done(log_dir: Path, module: str, n: int) -> None:
    """Exit code 0 is not enough: every rank must have left its done marker."""
    missing = [r for r in range(n) if not (log_dir / f"rank{r}.done").exists()]
    if missing:
        r = missing[0]
        lines = _last_lines(log_dir / f"rank{r}.log")
        raise SpikeinError(f"{module} rank {r} exited 0 without finishing; last log lines: "
                           f"{' | '.join(lines) or '(none)'} (log: {log_dir / f'rank{r}.log'})")


def _stop(procs: list[subprocess.Popen]) -> None:
    """Terminate our children that still run; kill those that ignore it."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.time() + 10
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _wait_all(procs: list[subprocess.Popen]) -> tuple[int, int] | None:
    """Wait for every rank; on the first failure stop the rest and return (rank, exit code)."""
    try:
        while True:
            codes = [p.poll() for p in procs]
            bad = [(r, c) for r, c in enumerate(codes) if c not in (None, 0)]
            if bad:
                _stop(procs)
                return bad[0]
            if all(c == 0 for c in codes):
                return None
            time.sleep(0.1)
    except BaseException:
        _stop(procs)
        raise


def _wait_one(proc: subprocess.Popen) -> int:
    try:
        return proc.wait()
    except BaseException:
        _stop([proc])
        raise


def _relay(proc: subprocess.Popen) -> tuple[deque[bytes], threading.Thread]:
    """Copy the launcher's output to our stdout as it comes (progress bars too), keep its tail."""
    tail: deque[bytes] = deque(maxlen=64)

    def pump() -> None:
        assert proc.stdout is not None
        out = getattr(sys.stdout, "buffer", None)
        while chunk := os.read(proc.stdout.fileno(), 4096):
            tail.append(chunk)
            if out is not None:
                out.write(chunk)
                out.flush()
            else:
                sys.stdout.write(chunk.decode(errors="replace"))

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return tail, thread


def _last_lines(path: Path, n: int = 3) -> list[str]:
    if not path.exists():
        return []
    lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-n:]


def failure_message(log_dir: Path, module: str, failed: tuple[int | None, int],
                    tail: deque[bytes] | None = None) -> str:
    """One line: the rank that failed first, its error and its last log lines."""
    markers = []
    for path in log_dir.glob("rank*.error"):
        try:
            markers.append(json.loads(path.read_text()))
        except ValueError:
            continue
    rank, code = failed
    if markers:
        first = min(markers, key=lambda m: m["time"])
        rank = int(first["rank"])
        log_path = log_dir / f"rank{rank}.log"
        if first.get("fault"):  # a filesystem fault: its cause and path say it all
            return f"{module} rank {rank} failed: {first['error']} (traceback: {log_path})"
        if first.get("exit") == 2:  # a SpikeinError already says what is wrong
            return f"{module} rank {rank}: {first['error']} (log: {log_path})"
        lines = [ln for ln in _last_lines(log_path, 4) if f"rank {rank} failed:" not in ln][-3:]
        return (f"{module} rank {rank} failed: {first['error']}; last log lines: "
                f"{' | '.join(lines) or '(none)'} (log: {log_path}, traceback: {log_dir}/rank{rank}.error)")
    if rank is None and tail is not None:
        rank = _rank_from_launcher(b"".join(tail).decode(errors="replace"))
    fault = filesystem_fault(log_dir)  # no marker: perhaps no room (or no filesystem) to write it
    if fault is not None:
        who = f"rank {rank}" if rank is not None else "a rank"
        return f"{module} {who} failed: {fault} (log: {log_dir})"
    how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
    who = f"rank {rank}" if rank is not None else "a rank"
    log_path = log_dir / f"rank{rank if rank is not None else 0}.log"
    lines = _last_lines(log_path)
    return f"{module} {who} {how}; last log lines: {' | '.join(lines) or '(none)'} (log: {log_path})"


def _rank_from_launcher(text: str) -> int | None:
    """torchrun's summary names the root-cause rank ("rank: 1 (local_rank: 1)")."""
    import re

    found = re.findall(r"rank\s*:\s*(\d+)\s*\(local_rank", text)
    return int(found[0]) if found else None
