"""The composed config's value checks, run once in the parent before any stage (dry run
included). Types are checked by the schema (launch/schema.py) as Hydra composes; what a
type cannot say each config class checks in its own ``validate()`` (core/config.py, and
each detector's ``Config``), run here on the typed config.
"""
from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf

from core.config import validate_config


def validate(cfg: Any) -> None:
    """Raise a ConfigError naming the first key whose value cannot work. ``cfg``: the composed
    config, or its typed instance (``OmegaConf.to_object``)."""
    validate_config(typed_config(cfg))


def typed_config(cfg: Any) -> Any:
    """The composed config as instances of its classes (a typed instance passes through; a
    value left unset is one line naming it, as :func:`launch.config.typed` says it)."""
    if not OmegaConf.is_config(cfg):
        return cfg
    from launch.config import typed

    return typed(cfg)
