"""What a detector is: scores one partition at a time, then turns all partitions' scores
into result rows (so a detector can compare a partition with the benchmark's controls).

Scoring is the expensive part and its output (``raw``, plain JSON) is cached per
partition, so a killed audit resumes without rescoring; ``summarize`` is cheap.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar, Sequence

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from audit.stats import PairedResult, TestResult
from core.errors import SpikeinError
from inject.items import Item, permute_choices

if TYPE_CHECKING:  # the scorer loads torch; composing a config imports the detectors
    from audit.scoring import BaseScorer

REGISTRY: dict[str, type[Detector]] = {}


def register(cls: type[Detector]) -> type[Detector]:
    REGISTRY[cls.name] = cls
    return cls


@dataclass
class PartitionData:
    benchmark: str
    name: str
    count: int | None  # copies injected; 0 = control; None = no plan (a public model)
    items: list[Item] = field(repr=False)
    option_order: str | None = None  # the run's inject.option_order (shuffled: recorded random orders); None: unknown

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


@dataclass
class Undeclared:
    """Stands for a detector that declares no ``Config``: its section is taken as written."""


class Detector:
    name: ClassVar[str]
    Config: ClassVar[type] = Undeclared  # the dataclass of ``audit.<name>`` (launch/schema.py adds it);
    # its ``validate(where)``, if any, checks the values (run at compose time and on construction)

    def __init__(self, cfg: Any):  # the detector's Config instance (audit.detector(name)) or a partial mapping
        if self.Config is Undeclared:
            self.cfg = dict(cfg)
            return
        self.config = typed_settings(self.Config, cfg, f"audit.{self.name}")
        check = getattr(self.config, "validate", None)
        if check is not None:  # the same checks compose runs on audit.<name> (AuditBase.validate)
            check(f"audit.{self.name}")
        self.cfg = asdict(self.config)

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

    def fresh_draw(self, part: PartitionData, rng) -> PartitionData | None:
        """``part`` in a fresh random order of what this detector tests (the null check,
        :mod:`audit.null_check`), or None when its null is not about an order."""
        return None


def fresh_item_order(part: PartitionData, rng) -> PartitionData:
    """The partition's items in a fresh random order (one the model never saw)."""
    order = rng.permutation(len(part.items))
    return replace(part, items=[part.items[int(i)] for i in order])


def fresh_option_orders(part: PartitionData, rng) -> PartitionData:
    """Each item's choices in a fresh random order (the answer follows its text)."""
    return replace(part, items=[permute_choices(it, [int(i) for i in rng.permutation(len(it.choices))])
                                for it in part.items])
    def paired(self, parts: Sequence[PartitionData], raws: Sequence[dict[str, Any]],
               reference: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """One dict per partition: the paired test of this model's scores (``raws``) against the
        reference model's on the same items and orders (``reference``; ``audit.reference_model``),
        as :func:`paired_fields`; empty dicts for a detector without one."""
        return [{} for _ in parts]


def typed_settings(cls: type, cfg: Any, where: str):
    """``cfg`` as a ``cls`` instance: the composed config's section passes through; a partial
    mapping (a test, a detector built by hand) is checked against ``cls``."""
    if isinstance(cfg, cls):
        return cfg
    plain = dict(cfg or {})
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(cls), plain))
    except OmegaConfBaseException as e:
        key = f"{where}.{e.full_key}" if getattr(e, "full_key", None) else where
        reason = str(getattr(e, "msg", None) or e).splitlines()[0]
        if "nterpolation" in reason:  # a ${seed} default outside the composed tree
            reason = "not set (its default interpolates a key of the whole config)"
        raise SpikeinError(f"{key}: {reason}") from None


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


def paired_fields(result: PairedResult | None, test: str, **extra: Any) -> dict[str, Any]:
    """A row's paired target-vs-reference test: ``paired_test`` names it (the report's label)."""
    if result is None:
        return {"paired_test": test, "paired_statistic": None, "paired_p": None, "paired_log10_p": None, **extra}
    f = p_fields(result.as_test())
    return {"paired_test": test, "paired_statistic": f["statistic"], "paired_p": f["p"],
            "paired_log10_p": f["log10_p"], "paired_method": result.method, "paired_n": result.n, **extra}
