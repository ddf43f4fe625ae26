"""What to audit: a run's checkpoints (from ``checkpoints/index.json``) or one named model.

The index lists only complete checkpoints and says ``finished`` once training ended,
so watching it is enough to audit each checkpoint as it lands.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from core.checkpoint_index import CheckpointIndex
from core.errors import SpikeinError
from core.run_dir import RunDir


@dataclass(frozen=True)
class Target:
    model: str  # from_pretrained path or hub id; rows name it (relative to checkpoints/ in a run)
    path: str
    step: int | None = None
    tokens_seen: int | None = None
    epochs: float | None = None

    @property
    def tag(self) -> str:
        return f"step_{self.step}" if self.step is not None else self.model


def targets_of(run_dir: str | Path, index: CheckpointIndex) -> list[Target]:
    """Every checkpoint ``index`` (:meth:`core.run_dir.RunDir.read_index`) lists with an HF
    export (``train.keep_hf=last`` drops the earlier ones' exports: nothing to load there)."""
    rd = RunDir(run_dir)
    return [Target(model=c.hf, path=str(rd.checkpoint_file(c.hf)), step=c.step, tokens_seen=c.tokens_seen, epochs=c.epochs)
            for c in index.checkpoints if c.hf]


def select(targets: list[Target], spec: Any) -> list[Target]:
    """``all``, ``last``, or a list of steps (each must exist)."""
    if spec in (None, "all"):
        return targets
    if spec == "last":
        return targets[-1:]
    steps = [int(spec)] if isinstance(spec, (int, str)) else [int(s) for s in spec]
    have = {t.step: t for t in targets}
    missing = [s for s in steps if s not in have]
    if missing:
        raise SpikeinError(
            f"audit.checkpoints: no checkpoint at step {', '.join(map(str, missing))}; "
            f"have: {', '.join(map(str, have)) or 'none'}"
        )
    return [have[s] for s in steps]


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def watch(
    read: Callable[[], CheckpointIndex | None],
    to_targets: Callable[[CheckpointIndex], list[Target]],
    poll_s: float,
    idle_s: float,
) -> Iterator[Target]:
    """Yield each new checkpoint as the index lists it, until training has finished.

    Gives up with an error after ``idle_s`` seconds without a new checkpoint while
    training is unfinished (a crashed trainer never sets ``finished``).
    """
    done: set[int | None] = set()
    idle = 0.0
    while True:
        index = read()
        new = [t for t in (to_targets(index) if index else []) if t.step not in done]
        for t in new:
            done.add(t.step)
            yield t
        if index and index.finished and not new:
            return
        if new:
            idle = 0.0
            continue
        if idle >= idle_s:
            raise SpikeinError(f"audit.watch: no new checkpoint for {idle_s:.0f} s and training not finished")
        _sleep(poll_s)
        idle += poll_s
