"""Option-shuffle test (Ni et al. 2024): is the published option order the most likely one?

Per item: log p(options block | question) for every option order (all k! for small k,
else a seeded sample that includes the original), options relabelled A, B, ... by
position. Reported: the paper's rates (scenario a: original order scores highest;
scenario b: the best order is an IsolationForest outlier, per threshold delta) and a
p-value for "original orders rank higher than chance": against the benchmark's control
partitions (Mann-Whitney U on normalised ranks; calibrated), or, with no controls,
against uniform ranks (uncalibrated: a benchmark's canonical option order need not be
exchangeable, e.g. sorted numbers or "all of the above" last).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Sequence

import numpy as np
from omegaconf import II

from audit.detectors.base import AuditContext, Detector, PartitionData, controls_for, p_fields, register
from audit.sequences import option_group, option_orders, rng_for
from audit.stats import isolation_score_of_max, mann_whitney_less, midrank_of_first, uniform_rank_test

DELTAS = (-0.2, -0.17, -0.15)


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
            "n_orders": [len(s) for s in scores],
            "iforest_max": [isolation_score_of_max(s) for s in scores] if self.isolation_forest else None,
        }

    def summarize(self, parts: Sequence[PartitionData], raws: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        norm = [_normalised(raw) for raw in raws]
        rows = []
        for i, raw in enumerate(raws):
            ctrl = controls_for(parts, i)
            if ctrl:
                test = mann_whitney_less(norm[i], np.concatenate([norm[j] for j in ctrl]))
            else:
                test = uniform_rank_test(np.asarray(raw["rank"]), np.asarray(raw["n_orders"]))
            rank = np.asarray(raw["rank"])
            rows.append({
                **p_fields(test),
                "null": "controls" if ctrl else "uniform",
                "calibrated": bool(ctrl),
                "rate_a": float(np.mean(rank == 1.0)) if len(rank) else None,
                "rate_b": self._rate_b(raw),
                "mean_rank": float(rank.mean()) if len(rank) else None,
                "chance_rate_a": float(np.mean(1.0 / np.asarray(raw["n_orders"]))) if len(rank) else None,
            })
        return rows

    def _rate_b(self, raw: dict[str, Any]) -> dict[str, float] | None:
        scores = raw.get("iforest_max")
        if scores is None or not len(scores):
            return None
        s = np.asarray(scores)
        return {str(d): float(np.mean(s < d)) for d in self.deltas}


def _normalised(raw: dict[str, Any]) -> np.ndarray:
    """Ranks mapped to [0, 1] (0 = original order best), comparable across option counts."""
    rank, n = np.asarray(raw["rank"], dtype=float), np.asarray(raw["n_orders"], dtype=float)
    return (rank - 1.0) / np.maximum(n - 1.0, 1.0)
