"""Detectors behind one registry: a new detector is one module here plus a config entry
(``audit.detectors: [..., name]`` and optional settings under ``audit.<name>``)."""
from __future__ import annotations

import functools
import importlib
import pkgutil
from typing import Any

from audit.detectors.base import REGISTRY, AuditContext, Detector, PartitionData, register
from core.config import SpikeinConfig, config_class
from core.errors import SpikeinError

for _m in pkgutil.iter_modules(__path__):
    if _m.name != "base":
        importlib.import_module(f"{__name__}.{_m.name}")


@functools.cache
def spikein_config_class() -> type[SpikeinConfig]:
    """:class:`SpikeinConfig` with every registered detector's ``Config`` as ``audit.<name>``:
    the class the composed config is (and a worker's or a saved run's config is read as)."""
    return config_class({name: cls.Config for name, cls in REGISTRY.items()})


def get_detector(name: str, cfg: Any = None) -> Detector:
    """The registered detector ``name`` with its settings (its ``Config`` instance, or a partial mapping)."""
    if name not in REGISTRY:
        raise SpikeinError(f"unknown detector '{name}' in audit.detectors; choose from: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name](cfg or {})


__all__ = ["REGISTRY", "AuditContext", "Detector", "PartitionData", "get_detector", "register", "spikein_config_class"]
