"""Accuracy: zero-shot multiple choice by log-likelihood, per partition.

``letter`` style scores each answer letter after the mcq rendering ("... Answer: B");
``text`` scores each choice's text after the question ("Answer: <text>", the cloze
rendering); ``norm`` and ``bytes`` score as ``text`` and pick the best log-likelihood per
character / per UTF-8 byte of the choice text, as lm-eval's ``acc_norm`` / ``acc_bytes``
(lm_eval/api/task.py, multiple_choice: the lengths are of the choice strings, without the
" " target delimiter the continuation starts with). ``norm`` is the headline number lm-eval
reports for ARC and HellaSwag. Inflation = accuracy - the pooled accuracy of the benchmark's other control
partitions; p = one-sided Fisher exact test of that difference (none without controls).
``statistic`` is the accuracy.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal, Sequence

import numpy as np

from audit.detectors.base import AuditContext, Detector, PartitionData, controls_for, p_fields, paired_fields, register
from audit.sequences import answer_group
from audit.stats import fisher_greater, mcnemar_greater
from core.checks import choices
from core.errors import ConfigError

Style = Literal["letter", "text", "norm", "bytes"]  # AccuracyConfig.style's choices
# style -> the rendering scored, and each choice's length the log-likelihood is divided by
STYLES: dict[str, tuple[str, Callable[[str], int] | None]] = {
    "letter": ("letter", None),
    "text": ("text", None),
    "norm": ("text", len),  # lm-eval acc_norm: characters
    "bytes": ("text", lambda c: len(c.encode("utf-8"))),  # lm-eval acc_bytes
}
assert tuple(STYLES) == choices(Style), "STYLES must cover exactly the Style choices"


def predict(lls: Sequence[float] | np.ndarray, choices: Sequence[str], style: str) -> int:
    """The chosen option: the best log-likelihood, per unit of choice length if the style says so.

    Ties go to the first option (``np.argmax``, as lm-eval); an empty choice text divides a
    negative log-likelihood by 0 and is never chosen (-inf), as in lm-eval.
    """
    length = STYLES[style][1]
    scores = np.asarray(lls, dtype=np.float64)
    if length is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            scores = scores / np.array([float(length(c)) for c in choices])
    return int(np.argmax(scores))


@dataclass
class AccuracyConfig:
    style: str = "letter"  # Style: letter: " A"/" B"...; text: choice text; norm / bytes: per char / UTF-8 byte (acc_norm / acc_bytes)

    def validate(self, where: str) -> None:
        if self.style not in choices(Style):
            raise ConfigError(f"{where}.style={self.style!r}: choose one of {', '.join(choices(Style))}")


@register
class Accuracy(Detector):
    name = "accuracy"
    Config = AccuracyConfig

    def __init__(self, cfg):
        super().__init__(cfg)
        self.style = self.config.style

    def settings(self) -> dict[str, Any]:
        return {"style": self.style}

    def score(self, ctx: AuditContext, part: PartitionData) -> dict[str, Any]:
        rendering = STYLES[self.style][0]
        groups = [answer_group(ctx.tokenizer, item, rendering, ctx.bos_id) for item in part.items]
        scores = ctx.scorer.score_groups(groups)
        pred = [predict(s, it.choices, self.style) for s, it in zip(scores, part.items)]
        return {"pred": pred, "correct": [int(p == it.answer) for p, it in zip(pred, part.items)],
                "ll": [[float(x) for x in s] for s in scores]}

    def paired(self, parts: Sequence[PartitionData], raws: Sequence[dict[str, Any]],
               reference: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Exact McNemar test on the same items: does the target get more of them right than the reference?"""
        label = "exact McNemar, per-item correct, target vs reference"
        return [paired_fields(mcnemar_greater(raw["correct"], ref["correct"]), label)
                if len(raw["correct"]) == len(ref["correct"]) else paired_fields(None, label)
                for raw, ref in zip(raws, reference)]

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
                "inflation": acc - kc / nc if nc and acc is not None else None,
                "chance": float(np.mean([1.0 / len(it.choices) for it in parts[i].items])) if n else None,
            })
        return rows
