"""One writer per stage of a run directory: ``<run_dir>/.lock.<stage>``, held with flock.

The lock file holds the holder's pid, so a second writer is refused with a line that names
it. The kernel drops the lock when the holder dies (even by SIGKILL), so a stale file
never blocks a rerun. Taking a lock this process already holds is a no-op: the pipeline
takes every stage's lock once its checks pass, and the stages it calls take theirs again.
"""
from __future__ import annotations

import fcntl
import os
import shutil
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from core.errors import SpikeinError
from core.run_dir import RunDir

_held: dict[Path, int] = {}  # lock path -> how many times this process holds it


def lock_path(run_dir: str | Path, stage: str) -> Path:
    return RunDir(run_dir).lock(stage)


def check_run_dir(run_dir: str | Path) -> Path:
    """A run dir that is a file, or not writable, is one line naming ``run_dir``."""
    path = Path(run_dir)
    if path.exists() and not path.is_dir():
        raise SpikeinError(f"run_dir={path} is a file, not a directory; choose another run_dir")
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise SpikeinError(f"run_dir={path}: {existing} is not writable; choose another run_dir")
    return path


@contextmanager
def stage_lock(run_dir: str | Path, stage: str) -> Iterator[None]:
    """Hold ``<run_dir>/.lock.<stage>`` for the block, or refuse naming the holder's pid."""
    path = lock_path(check_run_dir(run_dir), stage).resolve()
    if path in _held:
        _held[path] += 1
        try:
            yield
        finally:
            _held[path] -= 1
        return
    created = not path.parent.exists()
    fd = _acquire(path, stage)
    _held[path] = 1
    try:
        yield
    except BaseException:
        if created:  # a first run that failed before writing leaves no run dir behind
            _release(path, fd)
            remove_if_only_locks(path.parent)
        raise
    finally:
        _release(path, fd)


def _release(path: Path, fd: int) -> None:
    if _held.pop(path, None) is not None:
        os.close(fd)  # drops the flock; the file stays (removing it would race a new holder)


def remove_if_only_locks(run_dir: Path) -> None:
    """Undo a run dir this command created, when a failure left nothing in it but lock files."""
    if run_dir.is_dir() and all(p.name.startswith(".lock.") for p in run_dir.iterdir()):
        shutil.rmtree(run_dir, ignore_errors=True)


def stage_locks(run_dir: str | Path, stages: Iterable[str]) -> ExitStack:
    """Several stages' locks at once (``with stage_locks(run_dir, [...]):``)."""
    stack = ExitStack()
    try:
        for stage in stages:
            stack.enter_context(stage_lock(run_dir, stage))
    except BaseException:
        stack.close()
        raise
    return stack


def _acquire(path: Path, stage: str) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise SpikeinError(f"{path.parent}: the {stage} stage is already running (pid {holder} holds {path}); "
                           "wait for it or stop it") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd
