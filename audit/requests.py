"""What a scorer is asked and what it answers, as plain data (no torch: the config schema
imports the detectors, and composing a config should not load torch).

A :class:`Request` is a token sequence plus the span of targets to count; its score is
the summed natural-log probability of those targets, each given everything before it
(within the context window). A :class:`Group` is one prefix with many continuations
(the option-shuffle case); each continuation's score is log p(continuation | prefix).
:class:`TokenStats` holds per-target statistics instead of sums (membership inference).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class Request:
    tokens: Sequence[int]
    span: tuple[int, int] | None = None  # targets counted, as sequence indices [lo, hi); None: 1..n

    def targets(self) -> tuple[int, int]:
        lo, hi = self.span if self.span is not None else (1, len(self.tokens))
        return max(lo, 1), min(hi, len(self.tokens))

    def count(self) -> int:
        lo, hi = self.targets()
        return max(0, hi - lo)


@dataclass(frozen=True)
class Group:
    prefix: Sequence[int]
    continuations: Sequence[Sequence[int]]

    def requests(self) -> list[Request]:
        p = list(self.prefix)
        return [Request(p + list(c), (len(p), len(p) + len(c))) for c in self.continuations]


@dataclass
class TokenStats:
    """Per counted target of one request, in order: log p(target), and the mean and standard
    deviation of log p(z) for z drawn from the same next-token distribution (Min-K%++)."""

    logprob: np.ndarray
    mean: np.ndarray
    std: np.ndarray
