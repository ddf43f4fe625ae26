"""Cluster faults in one line: the filesystem error behind a worker's death, named with its path.

A full disk, a quota, a read-only or vanished shared filesystem kill a worker with an
OSError, or with a library's own error whose cause is lost (torch's zip writer reports a
full disk as ``RuntimeError: ... iostream error``). :func:`fault_cause` finds the OSError
in the exception chain, else asks the filesystem of the run dir what is wrong with it.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

MIN_FREE_BYTES = 1 << 20  # less than this free on the run dir's filesystem: "full"


def fault_cause(error: BaseException, run_dir: str | Path) -> str | None:
    """'<cause>: <path>' for a filesystem fault, None for any other failure."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno is not None:
            where = seen.filename or run_dir
            return f"{seen.strerror or os.strerror(seen.errno)}: {where}"
        seen = seen.__cause__ or seen.__context__
    return filesystem_fault(run_dir)


def filesystem_fault(path: str | Path) -> str | None:
    """What is wrong with the filesystem holding ``path`` (full, read-only, gone), or None."""
    path = Path(path)
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is None or existing != path and not path.exists():
        return f"{os.strerror(2)}: {path}"  # the shared filesystem (or the run dir) vanished
    try:
        usage = shutil.disk_usage(existing)
    except OSError as e:
        return f"{e.strerror}: {path}"
    if usage.free < MIN_FREE_BYTES:
        return f"No space left on device: {path} ({usage.free:,} bytes free)"
    if not os.access(existing, os.W_OK):
        return f"not writable (read-only file system?): {path}"
    return None
