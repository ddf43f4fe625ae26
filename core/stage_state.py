"""What a stage's output in the run dir is, relative to the config about to run.

Every stage (``inject.stage``, ``train.stage``, ``audit.stage``, ``report.report``) has
``stage_state(cfg) -> StageState`` (reads only: no writes, no workers, no network) and
``stage_plan(cfg) -> str`` (one human-readable line of what running it would do). The
pipeline reads every state before it writes anything, refuses a conflicting output unless
``overwrite=true``, and ``dry_run=true`` prints the plans and states.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from core.errors import CorruptOutputError

# done: matches the config, nothing to do; resumable: matches, partly there (the stage continues);
# conflicting: made from another config (refused unless overwrite=true); absent: nothing there yet.
Status = Literal["done", "resumable", "conflicting", "absent"]


@dataclass(frozen=True)
class StageState:
    stage: str
    status: Status
    detail: str = ""  # one line on what is there, e.g. "checkpoints up to step 200 of 430"
    changed: tuple[str, ...] = ()  # conflicting: the config keys that differ
    refusal: str = ""  # conflicting: the one-line error the stage raises without overwrite=true

    def refuse(self) -> None:
        """Raise the refusal of a conflicting output (anything else passes)."""
        if self.status == "conflicting":
            raise CorruptOutputError(self.refusal or f"{self.stage}: {self.detail}")

    def line(self) -> str:
        return f"{self.status}: {self.detail}" if self.detail else self.status


def changed_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two nested dicts, sorted."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new)):
            out += changed_keys(old.get(k), new.get(k), f"{prefix}{k}.")
        return out
    return [] if old == new else [prefix.rstrip(".")]


def keys_text(keys: list[str] | tuple[str, ...], limit: int = 5) -> str:
    """The first few changed keys for a one-line message."""
    return ", ".join(list(keys)[:limit]) or "unknown keys"
