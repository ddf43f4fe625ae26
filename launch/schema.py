"""The typed config schema: the groups of ``core/config.py`` assembled into one tree.

``conf/config.yaml`` lists ``spikein_schema`` first in its defaults, so Hydra merges every
YAML option file onto these dataclasses: an option file holds only what differs, a
misspelt key is refused, and OmegaConf type-checks every value (``train.max_steps=abc``).
Value checks that a type cannot say (``0 <= lo < hi <= 1``) are each class's ``validate()``.

A detector's settings are declared next to it (``Config`` in ``audit/detectors/<name>.py``)
and become ``audit.<name>`` here through the detector registry.
"""
from __future__ import annotations

from dataclasses import fields, is_dataclass
from typing import Any, get_type_hints

from core.config import (  # noqa: F401  (re-exported: the schema's groups)
    AuditBase,
    BenchmarkConfig,
    DataConfig,
    DeepSpeedConfig,
    HubCorpusConfig,
    InjectConfig,
    LauncherConfig,
    LoggerConfig,
    ModelConfig,
    ReportConfig,
    SpikeinConfig,
    SyntheticWorldConfig,
    TrainConfig,
)

SCHEMA_NAME = "spikein_schema"


def spikein_config_class() -> type[SpikeinConfig]:
    """The whole tree: :class:`SpikeinConfig` with every registered detector's section in ``audit``."""
    from audit.detectors import spikein_config_class as with_detectors

    return with_detectors()


def audit_config_class() -> type:
    """``AuditBase`` plus ``<name>: <detector>.Config`` for every registered detector."""
    return next(f.type for f in fields(spikein_config_class()) if f.name == "audit")  # type: ignore[return-value]


def unknown_key(node: dict[str, Any], cls: type, where: str = "") -> tuple[str, list[str]] | None:
    """The first key of ``node`` that ``cls`` does not declare (dotted) and the keys it does.

    Hydra's ``+key=value`` appends even to a structured node, so a misspelt ``+train.lrr=1``
    would otherwise be carried along and never read."""
    hints = get_type_hints(cls)  # core/config.py's annotations are strings (postponed evaluation)
    declared = {f.name: hints[f.name] for f in fields(cls)}
    for key, value in node.items():
        dotted = f"{where}.{key}" if where else str(key)
        if key not in declared:
            return dotted, list(declared)
        sub = declared[key]
        if isinstance(sub, type) and is_dataclass(sub) and isinstance(value, dict):
            found = unknown_key(value, sub, dotted)
            if found:
                return found
    return None


def register() -> None:
    """Store the schema in Hydra's ConfigStore (``conf/config.yaml`` lists it first), and each
    group's dataclass as ``schema/<group>`` for anyone composing a group alone."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    top = spikein_config_class()
    cs.store(name=SCHEMA_NAME, node=top)
    for name, hint in get_type_hints(top).items():
        if isinstance(hint, type) and is_dataclass(hint):
            cs.store(group="schema", name=name, node=hint)
    cs.store(group="schema", name="benchmark", node=BenchmarkConfig)
