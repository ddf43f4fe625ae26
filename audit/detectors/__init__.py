"""Detectors behind one registry: a new detector is one module here plus a config entry
(``audit.detectors: [..., name]`` and optional settings under ``audit.<name>``)."""
from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Mapping

from audit.detectors.base import REGISTRY, AuditContext, Detector, PartitionData, register
from core.errors import SpikeinError

for _m in pkgutil.iter_modules(__path__):
    if _m.name != "base":
        importlib.import_module(f"{__name__}.{_m.name}")


def get_detector(name: str, cfg: Mapping[str, Any] | None = None) -> Detector:
    if name not in REGISTRY:
        raise SpikeinError(f"unknown detector '{name}' in audit.detectors; choose from: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name](cfg or {})


__all__ = ["REGISTRY", "AuditContext", "Detector", "PartitionData", "get_detector", "register"]
