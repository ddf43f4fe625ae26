"""Membership-inference baselines, per item on its injected rendering (BOS once, the item's
tokens as injected): ``loss`` (mean token NLL), ``zlib`` (summed NLL over the zlib-compressed
length of the item text in bytes, Carlini et al. 2021), ``min_k`` (mean of the lowest k% token
log-probs, Shi et al. 2024) and ``min_k_pp`` (Min-K%++, Zhang et al. 2024: each token's
(log p - mu) / sigma under the next-token distribution, mean of the lowest k%).

One forward pass serves all four: the engine's per-token statistics of a partition are kept
per scorer (that is, per checkpoint) and token sequences, so the first of these detectors
to score a partition runs the model and the others reuse it (their rows show tokens_run 0).

Every score is oriented so that higher = more member-like (negated loss and zlib ratio).
Per partition against the pooled items of the benchmark's other control partitions: AUROC
(``statistic``), TPR at 5% FPR, and a calibrated one-sided Mann-Whitney p (the partition's
items score higher); None without controls.
"""
from __future__ import annotations

import hashlib
import json
import weakref
import zlib
from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import numpy as np

from audit.detectors.base import (
    AuditContext,
    Detector,
    PartitionData,
    controls_for,
    finite,
    p_fields,
    paired_fields,
    register,
)
from audit.requests import Request, TokenStats
from audit.sequences import partition_tokens
from audit.stats import mann_whitney_less, signed_rank_test
from core.errors import ConfigError
from inject.render import get_renderer

FPR = 0.05  # the TPR column's false-positive rate
PAIRED_SIGNED_RANK = "Wilcoxon signed-rank, per-item score target minus reference"
PAIRED_VS_CONTROLS = "reference-ratio score (target minus reference, Carlini et al.), partition vs controls, Mann-Whitney"
_STATS: weakref.WeakKeyDictionary[Any, dict[str, list[TokenStats]]] = weakref.WeakKeyDictionary()


def item_sequences(ctx: AuditContext, part: PartitionData) -> list[list[int]]:
    """Each item as a one-item injected document: BOS once, then the item's tokens."""
    bos = [ctx.bos_id] if ctx.bos_id is not None else []
    return [bos + t for t in partition_tokens(ctx.tokenizer, part.items, ctx.renderer)]


def item_stats(ctx: AuditContext, part: PartitionData) -> list[TokenStats]:
    """Per-token statistics of every item, computed once per scorer and token sequences."""
    seqs = item_sequences(ctx, part)
    key = hashlib.sha1(json.dumps(seqs).encode()).hexdigest()
    memo = _STATS.setdefault(ctx.scorer, {})
    if key not in memo:
        memo[key] = ctx.scorer.token_stats([Request(s) for s in seqs])
    return memo[key]


def lowest_mean(values: np.ndarray, k: float) -> float:
    """Mean of the lowest ``k`` fraction of ``values`` (at least one value)."""
    n = max(1, int(len(values) * k))
    return float(np.sort(values)[:n].mean()) if len(values) else float("nan")


@dataclass
class LowestKConfig:
    k: float = 0.2  # fraction of the item's tokens, the lowest-scoring ones, averaged (Shi et al.: 20%)

    def validate(self, where: str) -> None:
        if not 0 < self.k <= 1:
            raise ConfigError(f"{where}.k={self.k}: a fraction of tokens in (0, 1]")


@dataclass
class NoSettings:
    """loss and zlib have nothing to set."""


class MembershipInference(Detector):
    """One per-item score; subclasses say which (``item_score``, higher = member)."""

    Config: ClassVar[type] = NoSettings

    def score(self, ctx: AuditContext, part: PartitionData) -> dict[str, Any]:
        render = get_renderer(ctx.renderer)
        stats = item_stats(ctx, part)
        return {"score": [finite(self.item_score(s, render(it))) for s, it in zip(stats, part.items)],
                "n_tokens": [len(s.logprob) for s in stats]}

    def item_score(self, stats: TokenStats, text: str) -> float:
        raise NotImplementedError

    def paired(self, parts: Sequence[PartitionData], raws: Sequence[dict[str, Any]],
               reference: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """The reference-ratio score per item. With controls: partition vs controls on that score
        (calibrated: a target better than its reference on all text moves both alike); without:
        the signed-rank test of "the target scores these items higher than the reference", whose
        null also assumes the two models are equally good on text neither has seen."""
        ratios = [_paired_scores(raw, ref) for raw, ref in zip(raws, reference)]
        out = []
        for i in range(len(raws)):
            ctrl = controls_for(parts, i)
            mean = float(ratios[i].mean()) if len(ratios[i]) else None
            if not ctrl and any(p.is_control for p in parts):  # the benchmark's only control: nothing to compare with
                out.append(paired_fields(None, PAIRED_VS_CONTROLS, paired_mean_ratio=mean))
            elif ctrl:
                f = membership_fields(ratios[i], np.concatenate([ratios[j] for j in ctrl]))
                out.append({"paired_test": PAIRED_VS_CONTROLS, "paired_statistic": f["statistic"], "paired_p": f["p"],
                            "paired_log10_p": f["log10_p"], "paired_method": "normal_approx",
                            "paired_n": len(ratios[i]), "paired_mean_ratio": mean})
            else:
                out.append(paired_fields(signed_rank_test(ratios[i]), PAIRED_SIGNED_RANK, paired_mean_ratio=mean))
        return out

    def summarize(self, parts: Sequence[PartitionData], raws: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        scores = [_finite(raw["score"]) for raw in raws]
        rows = []
        for i in range(len(raws)):
            ctrl = controls_for(parts, i)
            ref = np.concatenate([scores[j] for j in ctrl]) if ctrl else np.zeros(0)
            rows.append({**membership_fields(scores[i], ref), "null": "controls" if len(ref) else None,
                         "calibrated": bool(len(ref))})
        return rows


def _paired_scores(raw: dict[str, Any], ref: dict[str, Any]) -> np.ndarray:
    """Per item: the target's score minus the reference's (Carlini et al.'s reference-model
    ratio, in log space; MIMIR's ``ref`` attack); items either model could not score are dropped."""
    if len(raw["score"]) != len(ref["score"]):
        return np.zeros(0)
    return _finite([None if a is None or b is None else a - b for a, b in zip(raw["score"], ref["score"])])


def _finite(values: Sequence[float | None]) -> np.ndarray:
    x = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    return x[np.isfinite(x)]


def membership_fields(x: np.ndarray, ref: np.ndarray) -> dict[str, Any]:
    """AUROC (``statistic``), TPR at ``FPR`` and the rank-test p of members ``x`` vs non-members ``ref``."""
    from sklearn.metrics import roc_auc_score, roc_curve

    out = {"mean_score": float(x.mean()) if len(x) else None,
           "control_mean_score": float(ref.mean()) if len(ref) else None}
    if not len(x) or not len(ref):
        return {**p_fields(None), "auroc": None, "tpr_at_5fpr": None, **out}
    labels = np.r_[np.ones(len(x)), np.zeros(len(ref))]
    values = np.r_[x, ref]
    fpr, tpr, _ = roc_curve(labels, values)
    test = mann_whitney_less(-x, -ref)  # "x scores higher" as "-x is smaller"
    auroc = float(roc_auc_score(labels, values))
    return {**p_fields(test), "statistic": auroc, "z": finite(test.statistic), "auroc": auroc,
            "tpr_at_5fpr": float(tpr[fpr <= FPR].max()), **out}


@register
class Loss(MembershipInference):
    name = "loss"

    def item_score(self, stats, text):
        return float(stats.logprob.mean()) if len(stats.logprob) else float("nan")  # = -mean NLL


@register
class Zlib(MembershipInference):
    name = "zlib"

    def item_score(self, stats, text):
        return float(stats.logprob.sum()) / len(zlib.compress(text.encode("utf-8")))  # = -NLL / zlib bytes


class _LowestK(MembershipInference):
    Config = LowestKConfig

    def __init__(self, cfg):
        super().__init__(cfg)
        self.k = float(self.config.k)

    def settings(self) -> dict[str, Any]:
        return {"k": self.k}


@register
class MinK(_LowestK):
    name = "min_k"

    def item_score(self, stats, text):
        return lowest_mean(stats.logprob, self.k)


@register
class MinKPlusPlus(_LowestK):
    name = "min_k_pp"

    def item_score(self, stats, text):
        z = (stats.logprob - stats.mean) / np.maximum(stats.std, 1e-12)
        return lowest_mean(z, self.k)
