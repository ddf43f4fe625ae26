"""The typed config schema: the groups of ``core/config.py`` assembled into one tree.

``conf/config.yaml`` lists ``spikein_schema`` first in its defaults, so Hydra merges every
YAML option file onto these dataclasses: an option file holds only what differs, a
misspelt key is refused, and OmegaConf type-checks every value (``train.max_steps=abc``).
Value checks that a type cannot say (``0 <= lo < hi <= 1``) are each class's ``validate()``.

A detector's settings are declared next to it (``Config`` in ``audit/detectors/<name>.py``)
and become ``audit.<name>`` here through the detector registry.
"""
from __future__ import annotations

from dataclasses import field, fields, is_dataclass, make_dataclass
from typing import Any, Dict, Optional

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
    SyntheticWorldConfig,
    TrainConfig,
)

SCHEMA_NAME = "spikein_schema"


def audit_config_class() -> type:
    """``AuditBase`` plus ``<name>: <detector>.Config`` for every registered detector."""
    from audit.detectors import REGISTRY

    extra = [(name, cls.Config, field(default_factory=cls.Config)) for name, cls in sorted(REGISTRY.items())]
    return make_dataclass("AuditConfig", extra, bases=(AuditBase,))


def spikein_config_class() -> type:
    """The whole tree; ``benchmarks`` stays a plain mapping (see :class:`BenchmarkConfig`)."""
    groups = [
        ("model", ModelConfig), ("data", DataConfig), ("inject", InjectConfig), ("train", TrainConfig),
        ("deepspeed", DeepSpeedConfig), ("audit", audit_config_class()), ("logger", LoggerConfig),
        ("launcher", LauncherConfig), ("report", ReportConfig),
    ]
    top = [
        ("experiment_name", str, field(default="demo")),  # names run_dir and the W&B group
        ("run_dir", str, field(default="runs/${experiment_name}")),  # every stage's input and output
        ("seed", int, field(default=1234)),  # the seed every ${seed} interpolation reads
        ("overwrite", bool, field(default=False)),  # rebuild a stage whose output came from another config
        ("dry_run", bool, field(default=False)),  # print the resolved plan and budget, touch nothing
        ("sweep_dir", Optional[str], field(default=None)),  # `spikein report sweep_dir=...`: aggregate a sweep
        ("benchmarks", Dict[str, Any], field(default_factory=dict)),  # name -> BenchmarkConfig entry
    ]
    return make_dataclass("SpikeinConfig", top + [(g, cls, field(default_factory=cls)) for g, cls in groups])


def unknown_key(node: dict[str, Any], cls: type, where: str = "") -> tuple[str, list[str]] | None:
    """The first key of ``node`` that ``cls`` does not declare (dotted) and the keys it does.

    Hydra's ``+key=value`` appends even to a structured node, so a misspelt ``+train.lrr=1``
    would otherwise be carried along and never read."""
    declared = {f.name: f.type for f in fields(cls)}
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
    for f in fields(top):
        if isinstance(f.type, type) and hasattr(f.type, "__dataclass_fields__"):
            cs.store(group="schema", name=f.name, node=f.type)
    cs.store(group="schema", name="benchmark", node=BenchmarkConfig)
