"""Option-shuffle test (Ni et al. 2024): is the published option order the most likely one?

Per item: log p(options block | question) for every option order (all k! for small k,
else a seeded sample that includes the original), options relabelled A, B, ... by
position. Reported: the paper's rates (scenario a: original order scores highest, a tie
with the best counting as highest as in the paper's code; scenario b: the best order is
an IsolationForest outlier, per threshold delta) and a
p-value for "original orders rank higher than chance": against the benchmark's control
partitions (Mann-Whitney U on normalised ranks; calibrated), or, with no controls,
against uniform ranks: exact in a run that injected seeded random option orders
(``inject.option_order=shuffled``), else uncalibrated (a benchmark's canonical option
order need not be exchangeable, e.g. sorted numbers or "all of the above" last). So each row also counts
the items whose published order is structured (inject.benchmark_checks.option_structures:
sorted, "above" options, and templates recurring across items) and gives the p-value without
them (``p_unstructured``) and without the templated ones only (``p_untemplated``). With
``audit.reference_model``: the paired signed-rank test of the two models' ranks (``paired_*``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Sequence

import numpy as np
from omegaconf import II

from audit.detectors.base import (
    AuditContext,
    Detector,
    PartitionData,
    controls_for,
    fresh_option_orders,
    p_fields,
    paired_fields,
    register,
)
from audit.sequences import option_group, option_orders, rng_for
from audit.stats import (
    TestResult,
    isolation_score_of_max,
    mann_whitney_less,
    midrank_of_first,
    signed_rank_test,
    uniform_rank_test,
)
from inject.benchmark_checks import STRUCTURES, is_templated, option_structures

DELTAS = (-0.2, -0.17, -0.15)
PAIRED_TEST = "Wilcoxon signed-rank, per-item normalised rank of the original order, target vs reference"


@dataclass
class OptionShuffleConfig:
    max_orders: int = 24  # orders sampled (original included) when k > exhaustive_up_to
    exhaustive_up_to: int = 5  # all k! orders for k <= this
    seed: int = II("seed")  # the sampled orders
    deltas: List[float] = field(default_factory=lambda: list(DELTAS))  # scenario-b IsolationForest thresholds
    isolation_forest: bool = True  # scenario-b rates (about 0.1 s per item on CPU)


@register
class OptionShuffle(Detector):
    name = "option_shuffle"
    Config = OptionShuffleConfig

    def __init__(self, cfg):
        super().__init__(cfg)
        c = self.config
        self.max_orders, self.exhaustive_up_to, self.seed = c.max_orders, c.exhaustive_up_to, c.seed
        self.deltas, self.isolation_forest = list(c.deltas), c.isolation_forest

    def settings(self) -> dict[str, Any]:
        return {
            "max_orders": self.max_orders, "exhaustive_up_to": self.exhaustive_up_to, "seed": self.seed,
            "deltas": self.deltas, "isolation_forest": self.isolation_forest,
        }

    def score(self, ctx: AuditContext, part: PartitionData) -> dict[str, Any]:
        groups = []
        for item in part.items:
            rng = rng_for(self.seed, part.benchmark, part.name, item.id, self.name)
            orders = option_orders(len(item.choices), self.exhaustive_up_to, self.max_orders, rng)
            groups.append(option_group(ctx.tokenizer, item, orders, ctx.bos_id))
        scores = ctx.scorer.score_groups(groups)
        return {
            "rank": [midrank_of_first(s) for s in scores],
            "n_above": [int((s[1:] > s[0]).sum()) for s in scores],  # orders scoring above the original
            "n_orders": [len(s) for s in scores],
            "iforest_max": [isolation_score_of_max(s) for s in scores] if self.isolation_forest else None,
        }

    def fresh_draw(self, part: PartitionData, rng) -> PartitionData:
        return fresh_option_orders(part, rng)

    def summarize(self, parts: Sequence[PartitionData], raws: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        norm = [_normalised(raw) for raw in raws]
        plain = [_unstructured(part) for part in parts]
        untemplated = [_untemplated(part) for part in parts]
        rows = []
        for i, raw in enumerate(raws):
            ctrl = controls_for(parts, i)
            rank = np.asarray(raw["rank"])
            exact = not ctrl and recorded_random_orders(parts[i])
            rows.append({
                **p_fields(_test(raw, norm, ctrl, i)),
                "null": "controls" if ctrl else "uniform",
                "calibrated": bool(ctrl) or exact,
                "null_exact": exact,
                "rate_a": _rate_a(raw),
                "rate_b": self._rate_b(raw),
                "mean_rank": float(rank.mean()) if len(rank) else None,
                "chance_rate_a": float(np.mean(1.0 / np.asarray(raw["n_orders"]))) if len(rank) else None,
                **_structure_fields(parts[i], raw, norm, ctrl, i, plain, untemplated),
            })
        return rows

    def paired(self, parts: Sequence[PartitionData], raws: Sequence[dict[str, Any]],
               reference: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Per item: the reference's normalised rank of the original order minus the target's
        (same items, same orders); Wilcoxon signed-rank for "the target ranks it higher". The
        reference carries the benchmark's formatting preferences, so they cancel in the pairs."""
        return [paired_fields(signed_rank_test(_normalised(ref) - _normalised(raw)), PAIRED_TEST)
                if len(ref["rank"]) == len(raw["rank"]) else paired_fields(None, PAIRED_TEST)
                for raw, ref in zip(raws, reference)]

    def _rate_b(self, raw: dict[str, Any]) -> dict[str, float] | None:
        scores = raw.get("iforest_max")
        if scores is None or not len(scores):
            return None
        s = np.asarray(scores)
        return {str(d): float(np.mean(s < d)) for d in self.deltas}


def _test(raw: dict[str, Any], norm: Sequence[np.ndarray], ctrl: list[int], i: int,
          keep: Sequence[np.ndarray] | None = None) -> TestResult:
    """Against the controls (Mann-Whitney) or uniform ranks; ``keep``: per-partition item masks."""
    mask = (lambda j: keep[j]) if keep is not None else (lambda j: slice(None))
    if ctrl:
        return mann_whitney_less(norm[i][mask(i)], np.concatenate([norm[j][mask(j)] for j in ctrl]))
    return uniform_rank_test(np.asarray(raw["rank"])[mask(i)], np.asarray(raw["n_orders"])[mask(i)])


def recorded_random_orders(part: PartitionData) -> bool:
    """The run injected (or, for a control, recorded) each item's options in a seeded random
    order (``inject.option_order=shuffled``): the tested order is a uniform draw, so its rank
    among all orders is exactly uniform unless the model learned that order."""
    return part.count is not None and part.option_order == "shuffled"


def _rate_a(raw: dict[str, Any]) -> float | None:
    """Scenario a: the original order scores at least as high as every other (Ni et al.'s
    code takes the original as the maximum on a tie); None for scores cached without n_above."""
    if not raw["rank"] or "n_above" not in raw:
        return None
    return float(np.mean(np.asarray(raw["n_above"]) == 0))


def _unstructured(part: PartitionData) -> np.ndarray:
    """Per item: True when its published option order has none of the known structures
    (templates included: they are judged across the partition's items)."""
    return np.array([not kinds for kinds in option_structures(part.items)], dtype=bool)


def _untemplated(part: PartitionData) -> np.ndarray:
    """Per item: True when its option order is no template (:data:`inject.benchmark_checks.TEMPLATES`)."""
    return np.array([not is_templated(kinds) for kinds in option_structures(part.items)], dtype=bool)


def _structure_fields(part: PartitionData, raw: dict[str, Any], norm: Sequence[np.ndarray], ctrl: list[int],
                      i: int, plain: Sequence[np.ndarray], untemplated: Sequence[np.ndarray]) -> dict[str, Any]:
    """How many items have a structured (or templated) option order, and the test without them."""
    counts = {kind: 0 for kind in STRUCTURES}
    for kinds in option_structures(part.items):
        for kind in kinds:
            counts[kind] += 1
    return {"structured_items": len(part.items) - int(plain[i].sum()), "structure": counts,
            **_without(raw, norm, ctrl, i, plain, "unstructured"),
            "templated_items": len(part.items) - int(untemplated[i].sum()),
            **_without(raw, norm, ctrl, i, untemplated, "untemplated")}


def _without(raw: dict[str, Any], norm: Sequence[np.ndarray], ctrl: list[int], i: int,
             keep: Sequence[np.ndarray], suffix: str) -> dict[str, Any]:
    """The test on the items ``keep`` marks (None when none is left)."""
    ok = bool(keep[i].sum()) and len(keep[i]) == len(raw["rank"])
    fields = p_fields(_test(raw, norm, ctrl, i, keep) if ok else None)
    return {f"p_{suffix}": fields["p"], f"log10_p_{suffix}": fields["log10_p"]}


def _normalised(raw: dict[str, Any]) -> np.ndarray:
    """Ranks mapped to [0, 1] (0 = original order best), comparable across option counts."""
    rank, n = np.asarray(raw["rank"], dtype=float), np.asarray(raw["n_orders"], dtype=float)
    return (rank - 1.0) / np.maximum(n - 1.0, 1.0)
