"""The learning-rate curve: linear warmup, then cosine (the budget itself: :mod:`core.budget`)."""
from __future__ import annotations

import math


def lr_factor(step: int, *, warmup: int, total: int, min_ratio: float) -> float:
    """Multiplier of the peak lr for 0-based update ``step``: linear warmup, then cosine.

    Warmup starts at 1/warmup (not 0) so the first update is not wasted; the cosine
    reaches ``min_ratio`` at the last update.
    """
    if step < warmup:
        return (step + 1) / warmup
    span = max(1, total - warmup - 1)
    progress = min(1.0, (step - warmup) / span)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
