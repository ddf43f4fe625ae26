"""The rank side of the worker protocol shared by every distributed stage (train, audit scoring).

A worker is ``python -m <module> <run_dir>``, started by :mod:`core.workers.launch`
(or by torchrun / ``deepspeed --no_local_rank`` / srun directly). It reads the
rank from the environment, logs to ``$SPIKEIN_LOG_DIR/rank<r>.log`` (rank 0 also to
the console), leaves ``rank<r>.done`` when it finished, and on failure ``rank<r>.error``
(one-line error, traceback, time) so the launcher can name the rank that failed first.
Every multi-process stage (train, audit scoring) goes through :func:`run_worker`.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Callable

from core.errors import Preempted, SpikeinError
from core.run_dir import RunDir
from core.workers.env import device_index, env_rank, map_launcher_env
from core.workers.faults import fault_cause
from core.workers.launch import die_with_parent

log = logging.getLogger("spikein")


def prepare_environment(backend: str) -> None:
    """Before DeepSpeed is imported: rank variables, CPU accelerator, no shared-memory all-reduce."""
    map_launcher_env()  # srun without torchrun (run_worker has done it already; bench scripts call this alone)
    for key, default in (("RANK", "0"), ("WORLD_SIZE", "1"), ("LOCAL_RANK", "0"),
                         ("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", "29500")):
        os.environ.setdefault(key, default)
    # DeepSpeed's CPU shared-memory all-reduce turns on when LOCAL_SIZE equals the world
    # size (the deepspeed launcher sets it) and crashes at exit; gloo alone is enough.
    os.environ.pop("LOCAL_SIZE", None)
    if backend == "gloo":
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def quiet_libraries() -> None:
    """One line per event: DeepSpeed and transformers only speak up for warnings."""
    import warnings

    for category in (FutureWarning, DeprecationWarning):  # library deprecation notices, once per rank
        warnings.filterwarnings("ignore", category=category)
    # each rank's GPU is set before the group exists (init_distributed): the barrier's advice to
    # pass device_id says nothing here (seen on an H200, once per barrier)
    warnings.filterwarnings("ignore", message=r"barrier\(\): using the device under current context")
    for name in ("DeepSpeed", "deepspeed", "torch.distributed"):
        logging.getLogger(name).setLevel(logging.WARNING)
    from deepspeed.utils import logger as ds_logger
    ds_logger.setLevel(logging.WARNING)
    import transformers
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()  # "Writing model shards" at every export


def init_distributed(backend: str) -> tuple[int, int]:
    """Initialise torch.distributed through DeepSpeed; returns (rank, world size)."""
    import importlib

    import deepspeed

    # by module path: `import deepspeed.comm.torch as x` yields torch itself (an attribute of deepspeed.comm)
    ds_torch = importlib.import_module("deepspeed.comm.torch")
    quiet_libraries()
    if backend == "gloo" and hasattr(ds_torch, "build_shm_op"):
        # The shm op is JIT-compiled (~45 s) only to be left unused without LOCAL_SIZE.
        ds_torch.build_shm_op = lambda: None  # type: ignore[attr-defined]  # (checked by hasattr above)
    if backend == "nccl":  # each rank on its own GPU before NCCL sees it (barriers, gathers)
        import torch
        torch.cuda.set_device(device_index())
    deepspeed.init_distributed(dist_backend=backend, verbose=False)
    import torch.distributed as dist
    return dist.get_rank(), dist.get_world_size()


def shutdown_distributed(clean: bool = True) -> None:
    """Leave together after success: a gloo rank that tears down while a peer still talks
    to it can abort. After a failure, never wait for peers that may be elsewhere."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        if clean:
            dist.barrier()
        dist.destroy_process_group()


class _TqdmHandler(logging.Handler):
    """Console lines that do not break a progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm
        tqdm.write(self.format(record), file=sys.stderr)


def setup_logging(rank: int, log_dir: Path, prefix: str) -> Path:
    """Rank 0: console + file; other ranks: everything (stdout, stderr) into their file."""
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / f"rank{rank}.log"
    if rank != 0:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    log.handlers.clear()
    log.setLevel(logging.INFO)
    log.propagate = False
    file_handler = logging.FileHandler(path)
    file_handler.setFormatter(logging.Formatter("%(asctime)s " + prefix + ": %(message)s"))
    log.addHandler(file_handler)
    if rank == 0:
        console = _TqdmHandler()
        console.setFormatter(logging.Formatter(prefix + ": %(message)s"))
        log.addHandler(console)
    return path


def _one_line(e: BaseException) -> str:
    if isinstance(e, SpikeinError):
        return str(e).strip().replace("\n", " ")
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def _log_to_file_only(message: str) -> None:
    record = log.makeRecord(log.name, logging.INFO, __file__, 0, message, (), None)
    for handler in log.handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def _leave_error_marker(e: BaseException, rank: int, code: int, run_dir: Path, log_dir: Path) -> None:
    """The one-line error for the launcher; a filesystem fault is named by its cause and
    path, and its traceback goes to the rank log only (best effort: the disk may be full)."""
    fault = None if isinstance(e, (SpikeinError, KeyboardInterrupt)) else fault_cause(e, run_dir)
    if fault is None:
        log.error("rank %d failed: %s", rank, _one_line(e))
    else:
        logging.raiseExceptions = False  # a log write failing on the same disk stays silent
        _log_to_file_only(f"rank {rank} failed: {fault}\n{traceback.format_exc()}")
    marker = {"rank": rank, "error": fault or _one_line(e), "time": time.time(), "exit": code,
              "fault": fault is not None, "traceback": traceback.format_exc()}
    try:
        (log_dir / f"rank{rank}.error").write_text(json.dumps(marker) + "\n")
    except OSError:  # the launcher diagnoses the filesystem itself (core/workers/faults.py)
        pass


def run_worker(main: Callable[[Path], None], prefix: str, argv: list[str] | None = None) -> None:
    """Entry point of ``python -m <worker> <run_dir>``: logging, failure marker, exit code."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(f"usage: python -m <worker module> <run_dir>  (got {argv})", file=sys.stderr)
        sys.exit(2)
    die_with_parent()  # a worker never outlives its launcher
    map_launcher_env()  # before anything reads RANK: srun tasks log and mark as their real rank
    run_dir = Path(argv[0])
    rank = env_rank()
    log_dir = Path(os.environ.get("SPIKEIN_LOG_DIR") or RunDir(run_dir).worker_logs(prefix))
    setup_logging(rank, log_dir, prefix)
    code = 0
    try:
        main(run_dir)
        (log_dir / f"rank{rank}.done").write_text(json.dumps({"rank": rank, "time": time.time()}) + "\n")
    except Preempted as e:  # every rank stopped at the same step, its checkpoint complete
        code = Preempted.exit_code
        _log_to_file_only(str(e))  # the console gets the command's one line
        (log_dir / f"rank{rank}.preempted").write_text(json.dumps({"rank": rank, "message": str(e)}) + "\n")
    except BaseException as e:  # noqa: BLE001 - every failure must leave its marker
        code = 2 if isinstance(e, SpikeinError) else 130 if isinstance(e, KeyboardInterrupt) else 1
        _leave_error_marker(e, rank, code, run_dir, log_dir)
    finally:
        shutdown_distributed(clean=code in (0, Preempted.exit_code))
        logging.shutdown()
    # Leave without the interpreter's teardown: a library thread still joinable then (gloo,
    # DeepSpeed) can abort the process ("terminate called without an active exception") after
    # its work is done and marked, turning a finished rank into a failed one. Everything this
    # rank writes is written and closed above; W&B runs are finished by the stages.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
