"""Accuracy: zero-shot multiple choice by log-likelihood, per partition.

``letter`` style scores each answer letter after the mcq rendering ("... Answer: B");
``text`` scores each choice's text after the question ("Answer: <text>", the cloze
rendering). Inflation = accuracy - the pooled accuracy of the benchmark's other control
partitions; p = one-sided Fisher exact test of that difference (none without controls).
``statistic`` is the accuracy.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from audit.detectors.base import AuditContext, Detector, PartitionData, controls_for, p_fields, register
from audit.sequences import answer_group
from audit.stats import fisher_greater
from inject.errors import SpikeinError

STYLES = ("letter", "text")


@dataclass
class AccuracyConfig:
    style: str = "letter"  # letter: score " A"/" B"...; text: score each choice's text


@register
class Accuracy(Detector):
    name = "accuracy"
    Config = AccuracyConfig

    def __init__(self, cfg):
        super().__init__(cfg)
        self.style = self.config.style
        if self.style not in STYLES:
            raise SpikeinError(f"audit.accuracy.style={self.style!r}: choose one of {', '.join(STYLES)}")

    def settings(self) -> dict[str, Any]:
        return {"style": self.style}

    def score(self, ctx: AuditContext, part: PartitionData) -> dict[str, Any]:
        groups = [answer_group(ctx.tokenizer, item, self.style, ctx.bos_id) for item in part.items]
        scores = ctx.scorer.score_groups(groups)
        pred = [int(np.argmax(s)) for s in scores]
        return {"pred": pred, "correct": [int(p == it.answer) for p, it in zip(pred, part.items)]}

    def summarize(self, parts: Sequence[PartitionData], raws: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        rows = []
        for i, raw in enumerate(raws):
            k, n = sum(raw["correct"]), len(raw["correct"])
            ctrl = controls_for(parts, i)
            kc = sum(sum(raws[j]["correct"]) for j in ctrl)
            nc = sum(len(raws[j]["correct"]) for j in ctrl)
            test = fisher_greater(k, n, kc, nc) if nc else None
            acc = k / n if n else None
            rows.append({
                **p_fields(test),
                "statistic": acc,
                "accuracy": acc,
                "control_accuracy": kc / nc if nc else None,
                "inflation": acc - kc / nc if nc and n else None,
                "chance": float(np.mean([1.0 / len(it.choices) for it in parts[i].items])) if n else None,
            })
        return rows
