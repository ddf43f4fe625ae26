"""The composed config's value checks, run once in the parent before any stage (dry run
included). Types are checked by the schema (launch/schema.py) as Hydra composes; what a
type cannot say each config class checks in its own ``validate()`` (core/config.py, and
each detector's ``Config``), run here on the typed config.
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from core.config import validate_config
from core.errors import ConfigError


def validate(cfg: Any) -> None:
    """Raise a ConfigError naming the first key whose value cannot work. ``cfg``: the composed
    config, or its typed instance (``OmegaConf.to_object``)."""
    validate_config(typed_config(cfg))


def typed_config(cfg: Any) -> Any:
    """The composed config as instances of its classes (a typed instance passes through)."""
    if not OmegaConf.is_config(cfg):
        return cfg
    try:
        typed = OmegaConf.to_object(cfg)
    except OmegaConfBaseException as e:
        raise ConfigError(f"{e.full_key}: {str(e.msg).splitlines()[0]}") from None
    return SimpleNamespace(**{str(k): v for k, v in typed.items()}) if isinstance(typed, dict) else typed
