"""A researcher's environment (issue 11) for tests in several packages: a working directory
that shadows spikein's modules with the user's own code, W&B online but unreachable, and the
tiny run trained from there once per test session (``conftest.cli_trained``)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

from train_fixtures import make_run, train_overrides

from core.workers.launch import free_port

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
FAKE_KEY = "local-" + "f" * 40  # W&B's key shape; must never reach a file
TRAIN_ARGS = ("train.max_steps=4", "train.checkpoint_every=2", "train.keep_last=2")
USER_CODE = 'import pathlib; pathlib.Path({marker!r}).write_text(__file__); raise SystemExit("USER CODE RAN")\n'


def env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "WANDB_MODE": "disabled", **extra}


def shadowing_cwd(tmp: Path) -> tuple[Path, Path]:
    """A research repo's working directory: its own train.py, train/ and audit.py."""
    cwd, marker = tmp / "research", tmp / "user_code_ran"
    (cwd / "train").mkdir(parents=True)
    for rel in ("train.py", "train/__init__.py", "audit.py"):
        (cwd / rel).write_text(USER_CODE.format(marker=str(marker)))
    return cwd, marker


def wandb_down_env(tmp: Path) -> dict[str, str]:
    """Online W&B with a closed port, an invalid key, a short init timeout, no netrc."""
    return env(WANDB_MODE="online", WANDB_BASE_URL=f"http://127.0.0.1:{free_port()}",
               WANDB_API_KEY=FAKE_KEY, HOME=str(tmp / "home"))


class CliTrained(NamedTuple):
    run: Path  # the finished run dir: checkpoints at steps 0, 2 and 4 (DeepSpeed states of 2 and 4)
    marker: Path  # written if spikein ever ran the user's code
    proc: subprocess.CompletedProcess
    wall: float  # seconds the command took


def train_from_user_cwd(tmp: Path) -> CliTrained:
    """`python -m launch.cli train` from a shadowing cwd with W&B online but unreachable."""
    cwd, marker = shadowing_cwd(tmp)
    run = tmp / "run"
    make_run(run, n_tokens=2048)
    args = [a for a in train_overrides(run, *TRAIN_ARGS) if not a.startswith("logger.mode")]
    t0 = time.time()
    proc = subprocess.run([PY, "-m", "launch.cli", "train", *args, "logger.init_timeout_s=5"], cwd=cwd,
                          env=wandb_down_env(tmp), capture_output=True, text=True, timeout=600)
    return CliTrained(run, marker, proc, time.time() - t0)
