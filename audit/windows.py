"""Sliding windows over a long sequence, exactly as Oren et al.'s reference code cuts them.

A sequence ``T`` of n tokens has n-1 targets (``T[1:]``, the first token is never
scored). Window j feeds ``T[s*j : s*j + c]`` and predicts the next token at each
position; the first window counts all its targets, later windows only their last
``stride`` ones, so every target is scored exactly once and with at least
``context - stride`` tokens of left context.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from core.errors import SpikeinError


@dataclass(frozen=True)
class Window:
    start: int  # first input token (index into the sequence)
    end: int  # one past the last input token
    first_scored: int  # first target counted, as an index into the sequence (>= start + 1)
    last_scored: int  # one past the last target counted (= end + 1 at most)


def check_context(context: int, stride: int) -> None:
    if context < 2:
        raise SpikeinError(f"audit.context={context}: need at least 2 tokens")
    if not 0 < stride <= context:
        raise SpikeinError(f"audit.stride={stride} must be in 1..context ({context})")


def windows(n_tokens: int, context: int, stride: int, span: tuple[int, int] | None = None) -> list[Window]:
    """The windows of an ``n_tokens`` sequence whose counted targets meet ``span`` = [lo, hi).

    Targets are indices into the sequence (1..n-1); ``span`` defaults to all of them.
    """
    lo, hi = span if span is not None else (1, n_tokens)
    lo, hi = max(lo, 1), min(hi, n_tokens)
    t = n_tokens - 1  # number of inputs (= targets)
    k = math.ceil(max(0, t - context) / stride)
    out = []
    for j in range(k + 1):
        start, end = stride * j, min(stride * j + context, t)
        rel = max(0, context - stride) if j > 0 else 0
        first, last = max(start + 1 + rel, lo), min(end + 1, hi)
        if first < last:
            out.append(Window(start, end, first, last))
    return out
