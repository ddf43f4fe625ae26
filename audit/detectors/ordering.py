"""Ordering test (Oren et al. 2023): is the canonical item order more likely than shuffles?

"Canonical" is the partition file's order: for a spikein run the injected order (a seeded
shuffle under ``inject.item_order=shuffled``, so the null is exact); for a public model
the published order, whose null assumes that order is exchangeable.

Per shard of contiguous items: the canonical sequence and ``permutations`` shuffles, each
scored whole; the sharded t-test on d_i = log p(canonical_i) - mean_j log p(shuffle_ij)
(``statistic`` = t), or the exact permutation test. A model that never saw the
partition finds every order equally likely; memorised order makes canonical stand out.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Optional, Sequence

import numpy as np
from omegaconf import II

from audit.detectors.base import (
    AuditContext,
    Detector,
    PartitionData,
    finite,
    fresh_item_order,
    p_fields,
    paired_fields,
    register,
)
from audit.requests import Request
from audit.sequences import ordering_sequences, partition_tokens, rng_for
from audit.stats import LN10, PairedResult, TestResult, permutation_p, sharded_t_test, signed_rank_test
from core.checks import choices
from core.errors import ConfigError, SpikeinError

OrderingTest = Literal["sharded", "permutation"]  # OrderingConfig.test's choices
PAIRED_TESTS = {"sharded": "paired t-test over shards, canonical-minus-shuffled log-likelihood, target vs reference",
                "permutation": "Wilcoxon signed-rank over shards, canonical-minus-shuffled log-likelihood, "
                               "target vs reference"}
MIN_SHARD_ITEMS = 2  # a shard of one item has no order to test


@dataclass
class OrderingConfig:
    shards: int = 10  # contiguous shards of a partition (sharded test: one t-test sample each)
    permutations: int = 30  # shuffles scored per shard
    seed: int = II("seed")  # the shuffles
    test: str = "sharded"  # OrderingTest: sharded (t-test over shards) | permutation (exact, p >= 1/(permutations+1))
    min_p: Optional[float] = None  # permutation test: refuse settings that cannot reach this p

    def validate(self, where: str) -> None:
        if self.test not in choices(OrderingTest):
            raise ConfigError(f"{where}.test={self.test!r}: choose one of {', '.join(choices(OrderingTest))}")
        if self.permutations < 1 or self.shards < 1:
            raise ConfigError(f"{where}.shards and .permutations must be >= 1")
        if self.test == "sharded" and self.shards < 2:
            raise ConfigError(f"{where}.shards=1: the sharded t-test needs >= 2 shards (or set ordering.test=permutation)")
        floor = 1.0 / (self.permutations + 1)
        if self.test == "permutation" and self.min_p is not None and floor > float(self.min_p):
            need = int(np.ceil(1.0 / float(self.min_p))) - 1
            raise ConfigError(f"{where}.permutations={self.permutations} cannot give p below {floor:.3g}; "
                              f"ordering.min_p={self.min_p} needs at least {need}")


@register
class Ordering(Detector):
    name = "ordering"
    Config = OrderingConfig

    def __init__(self, cfg):
        super().__init__(cfg)
        c = self.config
        self.shards, self.permutations, self.seed, self.test = c.shards, c.permutations, c.seed, c.test

    def settings(self) -> dict[str, Any]:
        return {"shards": self.shards, "permutations": self.permutations, "seed": self.seed, "test": self.test}

    def check(self, part: PartitionData) -> None:
        # a one-item shard's shuffles are all the canonical sequence: d = 0, p = 1 at every checkpoint
        if len(part.items) < MIN_SHARD_ITEMS * self.shards:
            most = len(part.items) // MIN_SHARD_ITEMS
            raise SpikeinError(
                f"partition {part.benchmark}/{part.name} has {len(part.items)} items: audit.ordering.shards={self.shards} "
                f"leaves fewer than {MIN_SHARD_ITEMS} items per shard; set audit.ordering.shards <= {most} "
                "or use larger partitions"
            )

    def sequences(self, ctx: AuditContext, part: PartitionData) -> tuple[list[list[int]], list[list[list[int]]]]:
        """Per shard: canonical and shuffled token sequences (joined as injection joins a copy)."""
        tokens = partition_tokens(ctx.tokenizer, part.items, ctx.renderer)
        rng = rng_for(self.seed, part.benchmark, part.name, self.name)
        return ordering_sequences(tokens, self.shards, self.permutations, rng, ctx.separator_ids, ctx.bos_id)

    def score(self, ctx: AuditContext, part: PartitionData) -> dict[str, Any]:
        canonical, shuffled = self.sequences(ctx, part)
        requests = [Request(c) for c in canonical] + [Request(s) for shard in shuffled for s in shard]
        scores = ctx.scorer.score(requests)
        r = len(canonical)
        return {"canonical": scores[:r].tolist(), "shuffled": scores[r:].reshape(r, self.permutations).tolist()}

    def fresh_draw(self, part: PartitionData, rng) -> PartitionData:
        return fresh_item_order(part, rng)

    def summarize(self, parts: Sequence[PartitionData], raws: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        return [self._row(raw) for raw in raws]

    def paired(self, parts: Sequence[PartitionData], raws: Sequence[dict[str, Any]],
               reference: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Per shard: the target's canonical-minus-shuffled difference d minus the reference's
        (same shards, same shuffles); one-sided over shards, as the detector's own test (a
        t-test for ``sharded``, the exact signed-rank test for ``permutation``)."""
        return [self._paired(raw, ref) for raw, ref in zip(raws, reference)]

    def _paired(self, raw: dict[str, Any], ref: dict[str, Any]) -> dict[str, Any]:
        d_target, d_ref = _shard_differences(raw), _shard_differences(ref)
        label = PAIRED_TESTS[self.test]
        if d_target.shape != d_ref.shape:
            return paired_fields(None, label)
        if self.test == "permutation":
            return paired_fields(signed_rank_test(d_target - d_ref), label)
        t, e = sharded_t_test(d_target, d_ref[:, None])
        differs = int((np.abs(e) > 0).sum())
        return paired_fields(PairedResult(t.statistic, t.log_p, "t", differs) if len(e) > 1 else None, label)

    def _row(self, raw: dict[str, Any]) -> dict[str, Any]:
        canonical, shuffled = np.asarray(raw["canonical"]), np.asarray(raw["shuffled"])
        sharded, d = sharded_t_test(canonical, shuffled)
        per_shard, pooled = permutation_p(canonical, shuffled)
        chosen = sharded if self.test == "sharded" else TestResult(float(d.mean()), float(np.log(pooled)))
        return {
            **p_fields(chosen),
            "test": self.test,
            "t": finite(sharded.statistic),
            "log10_p_sharded": finite(sharded.log_p / LN10),
            "perm_p": pooled,
            "shard_perm_p": per_shard.tolist(),
            "mean_diff": float(d.mean()),
            "sd_diff": finite(float(d.std(ddof=1))) if len(d) > 1 else None,
        }


def _shard_differences(raw: dict[str, Any]) -> np.ndarray:
    """Per shard: log p(canonical) - mean log p(shuffles)."""
    return np.asarray(raw["canonical"], dtype=np.float64) - np.asarray(raw["shuffled"], dtype=np.float64).mean(axis=1)
