"""W&B wiring shared by the train and audit workers (rank 0 only).

Lives beside the other shared contracts because both workers need it and nothing
may import ``launch``. The API key is never passed, logged or written: W&B reads
it from its own netrc / ``WANDB_API_KEY``.
"""
from __future__ import annotations

import os
import re
from typing import Any, Mapping

# Credential-looking keys (api_key, hf_token, secret, password), not "tokenizer" or "max_tokens".
_SECRET = re.compile(r"(api[_-]?key|secret|password|passwd|(^|_)token$)", re.I)


def redact(obj: Any) -> Any:
    """A copy of a config with any secret-looking key's value removed."""
    if isinstance(obj, Mapping):
        return {k: ("<redacted>" if _SECRET.search(str(k)) else redact(v)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact(v) for v in obj]
    return obj


def wandb_mode(logger_cfg: Mapping[str, Any]) -> str:
    """Config first, then $WANDB_MODE, else offline: a run never needs the network by default."""
    return logger_cfg.get("mode") or os.environ.get("WANDB_MODE") or "offline"


def init_wandb(
    logger_cfg: Mapping[str, Any],
    *,
    run_dir: str,
    job_type: str,
    config: Mapping[str, Any],
    name: str | None = None,
):
    """Start a W&B run in the experiment's group, or return None when disabled."""
    mode = wandb_mode(logger_cfg)
    if mode == "disabled":
        return None
    import wandb

    os.environ.setdefault("WANDB_SILENT", "true")
    return wandb.init(
        project=logger_cfg.get("project") or "spikein",
        entity=logger_cfg.get("entity"),
        group=logger_cfg.get("group"),
        job_type=job_type,
        name=name,
        dir=run_dir,
        mode=mode,
        config=redact(dict(config)),
        tags=list(logger_cfg.get("tags") or []),
        reinit="finish_previous",
    )
