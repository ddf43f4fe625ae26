"""Run a module under torchrun from a test, with every rank's output at hand on failure."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_nodes(commands: list[list[str]], cwd: Path, env: dict, timeout: int) -> list[str]:
    """Start one command per "node" together (they rendezvous over loopback), wait for all;
    assert every one exited 0, showing each one's last output otherwise; their outputs."""
    procs = [subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for cmd in commands]
    try:
        outs = [p.communicate(timeout=timeout)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0] * len(procs), "\n---\n".join(o[-2500:] for o in outs)
    return outs


def rank_logs(log_dir: Path) -> str:
    parts = [f"--- {p.relative_to(log_dir)}\n{p.read_text()[-2500:]}" for p in sorted(log_dir.rglob("*.log"))]
    return "\n".join(parts) or "(no rank logs)"


def torchrun(args: list[str], log_dir: Path, nproc: int = 2, env: dict | None = None,
             timeout: int = 180, attempts: int = 2) -> None:
    """``python -m torch.distributed.run --nproc_per_node=N <args>``; raise with the ranks' logs.

    A rank killed by a signal (gloo has aborted a rank while peers tear down on a loaded
    CI machine) gets one more attempt; a rank that exits with an error does not.
    """
    failures = []
    for attempt in range(attempts):
        logs = log_dir / f"attempt{attempt}"
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
               f"--master_port={free_port()}", f"--log-dir={logs}", "--redirects=3", *args]
        proc = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
                              capture_output=True, text=True, timeout=timeout)
        if proc.returncode == 0:
            if failures:
                print(f"torchrun succeeded on attempt {attempt + 1}; earlier failure:\n{failures[0]}")
            return
        failures.append(f"exit {proc.returncode}\n{rank_logs(logs)}\n--- launcher\n{proc.stderr[-1500:]}")
        if "Signal" not in proc.stderr:
            break
    raise AssertionError("\n\n".join(failures))
