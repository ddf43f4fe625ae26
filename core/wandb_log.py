"""W&B wiring shared by the train and audit workers (rank 0 only).

Lives beside the other shared contracts because both workers need it and nothing
may import ``launch``. The API key is never passed, logged or written: W&B reads
it from its own netrc / ``WANDB_API_KEY``. Callers get a run object with ``log``,
``define_metric`` and ``finish`` whether W&B is on or off.
"""
from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Mapping

from core.config import LoggerConfig, typed_section

# One `spikein` command (its stages, their workers, a sweep's points): set by the CLI, inherited.
SESSION_ENV = "SPIKEIN_SESSION"
FAILED_MARKER = "online_start_failed.json"  # in <dir>/wandb/: this session's online start failed

# Credential-looking keys (api_key, hf_token, secret, password), not "tokenizer" or "max_tokens".
_SECRET = re.compile(r"(api[_-]?key|secret|password|passwd|(^|_)token$)", re.I)


def redact(obj: Any) -> Any:
    """A copy of a config with any secret-looking key's value removed."""
    if isinstance(obj, Mapping):
        return {k: ("<redacted>" if _SECRET.search(str(k)) else redact(v)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact(v) for v in obj]
    return obj


def logger_config(logger_cfg: LoggerConfig | Mapping[str, Any]) -> LoggerConfig:
    return typed_section(LoggerConfig, logger_cfg)


def wandb_mode(logger_cfg: LoggerConfig | Mapping[str, Any]) -> str:
    """Config first, then $WANDB_MODE, else offline: a run never needs the network by default."""
    return logger_config(logger_cfg).mode or os.environ.get("WANDB_MODE") or "offline"


class NullRun:
    """W&B off (disabled, or not rank 0): every call does nothing, so callers never check."""

    active = False

    def log(self, data: Mapping[str, Any], step: int | None = None) -> None:
        pass

    def define_metric(self, *args: Any, **kwargs: Any) -> None:
        pass

    def finish(self) -> None:
        pass


class WandbRun(NullRun):
    """A live W&B run behind the same four calls."""

    active = True

    def __init__(self, run) -> None:
        self.run = run

    def log(self, data: Mapping[str, Any], step: int | None = None) -> None:
        self.run.log(dict(data), step=step)

    def define_metric(self, *args: Any, **kwargs: Any) -> None:
        self.run.define_metric(*args, **kwargs)

    def finish(self) -> None:
        self.run.finish()


def init_wandb(
    logger_cfg: LoggerConfig | Mapping[str, Any],
    *,
    run_dir: str,
    job_type: str,
    config: Mapping[str, Any],
    name: str | None = None,
) -> NullRun:
    """A W&B run in the experiment's group (a :class:`NullRun` when disabled). Logging never
    costs results: an online start that fails or times out falls back to offline."""
    lc = logger_config(logger_cfg)
    mode = wandb_mode(lc)
    if mode == "disabled":
        return NullRun()
    import wandb

    os.environ.setdefault("WANDB_SILENT", "true")
    kwargs = dict(project=lc.project, entity=lc.entity, group=lc.group, job_type=job_type, name=name, dir=run_dir,
                  config=redact(dict(config)), tags=list(lc.tags), reinit="finish_previous")
    marker = Path(run_dir) / "wandb" / FAILED_MARKER
    if mode == "online" and _failed_this_session(marker):
        return WandbRun(wandb.init(mode="offline", **kwargs))  # said once already: no second wait or warning
    try:
        return WandbRun(wandb.init(mode=mode, settings=wandb.Settings(init_timeout=lc.init_timeout_s), **kwargs))
    except Exception as e:  # noqa: BLE001 - no network, bad key, W&B down: keep the run going
        if mode != "online":
            raise
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
    run = wandb.init(mode="offline", **kwargs)
    _remember_failure(marker, reason)
    print(f"W&B: online start failed ({reason}); logging offline instead (so do this command's later stages), "
          f"upload later with `wandb sync {Path(run.settings.sync_dir).parent}/offline-run-*`", file=sys.stderr, flush=True)
    return WandbRun(run)


def _failed_this_session(marker: Path) -> bool:
    session = os.environ.get(SESSION_ENV)
    try:
        return bool(session) and json.loads(marker.read_text()).get("session") == session
    except (OSError, ValueError):
        return False


def _remember_failure(marker: Path, reason: str) -> None:
    """Later stages of the same command go offline at once: one timeout and one warning per command."""
    from core.atomic import write_text

    if os.environ.get(SESSION_ENV):
        write_text(marker, json.dumps({"session": os.environ[SESSION_ENV], "reason": reason}) + "\n")
