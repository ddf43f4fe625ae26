"""What a detector is: scores one partition at a time, then turns all partitions' scores
into result rows (so a detector can compare a partition with the benchmark's controls).

Scoring is the expensive part and its output (``raw``, plain JSON) is cached per
partition, so a killed audit resumes without rescoring; ``summarize`` is cheap.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Sequence

from audit.scoring import BaseScorer
from audit.stats import TestResult
from inject.items import Item

REGISTRY: dict[str, type["Detector"]] = {}


def register(cls: type["Detector"]) -> type["Detector"]:
    REGISTRY[cls.name] = cls
    return cls


@dataclass
class PartitionData:
    benchmark: str
    name: str
    count: int | None  # copies injected; 0 = control; None = no plan (a public model)
    items: list[Item] = field(repr=False)

    @property
    def is_control(self) -> bool:
        return self.count == 0


@dataclass
class AuditContext:
    """What detectors need to turn items into scored tokens."""

    scorer: BaseScorer
    tokenizer: Any
    renderer: str  # the renderer the benchmark was injected with
    separator_ids: list[int]
    bos_id: int | None


class Detector:
    name: ClassVar[str]

    def __init__(self, cfg: Mapping[str, Any]):
        self.cfg = dict(cfg)

    def settings(self) -> dict[str, Any]:
        """Everything that changes this detector's results (part of each row's cache key)."""
        return {}

    def check(self, part: PartitionData) -> None:
        """Raise SpikeinError before any scoring when ``part`` cannot be audited."""

    def score(self, ctx: AuditContext, part: PartitionData) -> dict[str, Any]:
        raise NotImplementedError

    def summarize(self, parts: Sequence[PartitionData], raws: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """One dict per partition: ``statistic``, ``p``, ``log10_p`` and detector extras."""
        raise NotImplementedError


def finite(x: float | None) -> float | None:
    """JSON-safe: NaN and infinities become null."""
    return None if x is None or not math.isfinite(x) else float(x)


def p_fields(result: TestResult | None) -> dict[str, float | None]:
    if result is None:
        return {"statistic": None, "p": None, "log10_p": None}
    return {"statistic": finite(result.statistic), "p": finite(result.p), "log10_p": finite(result.log10_p)}


def controls_for(parts: Sequence[PartitionData], i: int) -> list[int]:
    """The benchmark's control partitions other than ``i`` itself."""
    return [j for j, p in enumerate(parts) if p.is_control and j != i]
