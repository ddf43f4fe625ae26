"""Successor test (spikein's own order test): does each item follow its injected predecessor?

Within contiguous blocks of the injected order, S[x, b] = log p(tokens of b | BOS + tokens
of x + separator) for every ordered pair x != b (one group per prefix x: one tree row),
tokenized exactly as injection joins two neighbouring items. r(x, b) = normalised rank of
S[x, b] in column b (0 = the best predecessor); T = the sum of r over the injected order's
neighbours. Under the null the injected order is independent of the model, so T of random
within-block orders on the same S is its exact null distribution (no further model calls).
``statistic`` is T. Also a calibrated comparison against the benchmark's controls: the
true neighbours' ranks, Mann-Whitney U.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from omegaconf import II

from audit.detectors.base import (
    AuditContext,
    Detector,
    PartitionData,
    controls_for,
    finite,
    fresh_item_order,
    p_fields,
    paired_fields,
    register,
)
from audit.requests import Group
from audit.sequences import partition_tokens, rng_for, shard_slices
from audit.stats import LN10, PairedResult, TestResult, column_ranks, mann_whitney_less, successor_test
from core.errors import ConfigError, SpikeinError

PAIRED_TEST = "successor test on the target-minus-reference rank matrices (exact permutation null)"


@dataclass
class SuccessorConfig:
    block: int = 40  # items per block of the injected order: n * (block - 1) continuations, linear in n
    permutations: int = 100_000  # random within-block orders: Monte Carlo p >= 1/(permutations+1), below
    # that the row's p is the (labelled) normal approximation; all orders enumerated when fewer
    seed: int = II("seed")  # the random orders

    def validate(self, where: str) -> None:
        if self.block < 3:
            raise ConfigError(f"{where}.block={self.block}: need >= 3 items per block (ranks among >= 2 predecessors)")
        if self.permutations < 1:
            raise ConfigError(f"{where}.permutations={self.permutations} must be >= 1")


@register
class Successor(Detector):
    name = "successor"
    Config = SuccessorConfig

    def __init__(self, cfg):
        super().__init__(cfg)
        self.block, self.permutations, self.seed = self.config.block, self.config.permutations, self.config.seed

    def settings(self) -> dict[str, Any]:
        return {"block": self.block, "permutations": self.permutations, "seed": self.seed}

    def check(self, part: PartitionData) -> None:
        if len(part.items) < 3:
            raise SpikeinError(f"partition {part.benchmark}/{part.name} has {len(part.items)} items; "
                               "the successor test needs at least 3")

    def blocks(self, n_items: int) -> list[slice]:
        """Contiguous blocks of at most ``block`` items, balanced (no stub block at the end)."""
        return shard_slices(n_items, math.ceil(n_items / self.block))

    def groups(self, ctx: AuditContext, part: PartitionData) -> list[Group]:
        """One group per item x: prefix BOS + x + separator, the block's other items as continuations."""
        tokens = partition_tokens(ctx.tokenizer, part.items, ctx.renderer)
        bos = [ctx.bos_id] if ctx.bos_id is not None else []
        out = []
        for sl in self.blocks(len(tokens)):
            for x in range(sl.start, sl.stop):
                out.append(Group(bos + tokens[x] + list(ctx.separator_ids),
                                 [tokens[b] for b in range(sl.start, sl.stop) if b != x]))
        return out

    def score(self, ctx: AuditContext, part: PartitionData) -> dict[str, Any]:
        scores = iter(ctx.scorer.score_groups(self.groups(ctx, part)))
        matrices = []
        for sl in self.blocks(len(part.items)):
            m = sl.stop - sl.start
            s = np.zeros((m, m))
            for x in range(m):
                s[x, np.arange(m) != x] = next(scores)
            matrices.append(s.tolist())
        return {"S": matrices}

    def fresh_draw(self, part: PartitionData, rng) -> PartitionData:
        return fresh_item_order(part, rng)

    def paired(self, parts: Sequence[PartitionData], raws: Sequence[dict[str, Any]],
               reference: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """The successor test on the difference of the two models' rank matrices (target minus
        reference, per block): T = the injected order's summed rank difference, against random
        within-block orders on the same matrices (exact as the detector's own null; a
        predecessor preference both models share cancels)."""
        out = []
        for part, raw, ref in zip(parts, raws, reference):
            if [len(s) for s in raw["S"]] != [len(s) for s in ref["S"]]:
                out.append(paired_fields(None, PAIRED_TEST))
                continue
            diff = [column_ranks(np.asarray(t)) - column_ranks(np.asarray(r)) for t, r in zip(raw["S"], ref["S"])]
            rng = rng_for(self.seed, part.benchmark, part.name, self.name, "paired")
            result = successor_test(diff, self.permutations, rng)
            # low T is evidence: the statistic is reported as is, the p is P(T(random) <= T)
            differ = int(sum((np.abs(np.diag(d, 1)) > 1e-12).sum() for d in diff))  # injected neighbours whose rank moved
            out.append(paired_fields(PairedResult(result.statistic, result.log_p, result.method, differ), PAIRED_TEST))
        return out

    def summarize(self, parts: Sequence[PartitionData], raws: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        ranks = [[column_ranks(np.asarray(s)) for s in raw["S"]] for raw in raws]
        neighbours = [np.concatenate([np.diag(r, 1) for r in rs]) for rs in ranks]
        rows = []
        for i, part in enumerate(parts):
            result = successor_test(ranks[i], self.permutations, rng_for(self.seed, part.benchmark, part.name, self.name))
            ctrl = controls_for(parts, i)
            vs = mann_whitney_less(neighbours[i], np.concatenate([neighbours[j] for j in ctrl])) if ctrl else None
            rows.append({
                **p_fields(TestResult(result.statistic, result.log_p)),
                "p_method": result.method,
                "log10_p_mc": finite(result.log_p_mc / LN10) if result.log_p_mc is not None else None,
                "log10_p_normal": finite(result.log_p_normal / LN10),
                "orders": result.orders,
                "null_mean": result.mean, "null_sd": result.sd,
                "mean_neighbour_rank": float(neighbours[i].mean()) if len(neighbours[i]) else None,
                "blocks": [len(s) for s in raws[i]["S"]],
                # a run tests the order it injected; a public model's published order is only
                # a valid null if that order is exchangeable (sorted files are not)
                "tested_order": "injected" if part.count is not None else "published",
                **_control_fields(vs),
            })
        return rows


def _control_fields(result: TestResult | None) -> dict[str, Any]:
    """The neighbours' ranks against the controls' (calibrated; None without controls)."""
    f = p_fields(result)
    return {"control_z": f["statistic"], "control_p": f["p"], "control_log10_p": f["log10_p"]}
