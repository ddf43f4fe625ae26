"""W&B wiring shared by the train and audit workers (rank 0 only).

Lives beside the other shared contracts because both workers need it and nothing
may import ``launch``. The API key is never passed, logged or written: W&B reads
it from its own netrc / ``WANDB_API_KEY``. Callers get a run object with ``log``,
``define_metric`` and ``finish`` whether W&B is on or off.
"""
from __future__ import annotations

import os
import re
import sys
from typing import Any, Mapping

from core.config import LoggerConfig, typed_section

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
    timeout = float(lc.init_timeout_s)
    try:
        return WandbRun(wandb.init(mode=mode, settings=wandb.Settings(init_timeout=timeout), **kwargs))
    except Exception as e:  # noqa: BLE001 - no network, bad key, W&B down: keep the run going
        if mode != "online":
            raise
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
    run = wandb.init(mode="offline", **kwargs)
    print(f"W&B: online start failed ({reason}); logging offline instead, upload later with "
          f"`wandb sync {run.settings.sync_dir}`", file=sys.stderr, flush=True)
    return WandbRun(run)
