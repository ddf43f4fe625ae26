"""Numbers the reports aggregate: detection rates with Wilson intervals, Fisher-combined p."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np
from scipy import special, stats

from audit.results import ResultRow

LN10 = math.log(10.0)


@dataclass(frozen=True)
class Rate:
    """``k`` of ``n`` partitions flagged, with a two-sided Wilson interval."""

    k: int
    n: int
    low: float
    high: float

    @property
    def rate(self) -> float:
        return self.k / self.n if self.n else float("nan")


def wilson(k: int, n: int, confidence: float = 0.95) -> Rate:
    if n == 0:
        return Rate(0, 0, float("nan"), float("nan"))
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return Rate(k, n, float(ci.low), float(ci.high))


def row_log10_p(r: ResultRow) -> float | None:
    """A row's log10 p: the recorded one (it survives where p underflows to 0), else from p."""
    if r.log10_p is not None:
        return float(r.log10_p)
    if r.p is None:
        return None
    return math.log10(max(float(r.p), 1e-300))


def flagged(r: ResultRow, alpha: float) -> bool:
    lp = row_log10_p(r)
    return lp is not None and lp < math.log10(alpha)


def detection_rate(rows: Iterable[ResultRow], alpha: float) -> Rate:
    """The share of rows (one per partition) with p < alpha."""
    hits = [flagged(r, alpha) for r in rows if row_log10_p(r) is not None]
    return wilson(sum(hits), len(hits))


def fisher_log10_p(log10_ps: Iterable[float]) -> float:
    """Fisher's method in log space: X = -2 sum ln p_i ~ chi2(2m) under the null.

    For even degrees of freedom the survival function is exactly
    exp(-X/2) * sum_{j<m} (X/2)^j / j!, so its log never underflows
    (scipy.stats.combine_pvalues returns 0 once X is large).
    """
    lps = [float(x) for x in log10_ps]
    if not lps:
        raise ValueError("no p-values to combine")
    m = len(lps)
    half_x = -LN10 * sum(lps)  # X / 2
    if half_x <= 0:
        return 0.0
    j = np.arange(m)
    log_sf = -half_x + special.logsumexp(j * math.log(half_x) - special.gammaln(j + 1))
    return float(min(log_sf, 0.0) / LN10)


def fmt_rate(r: Rate) -> str:
    if not r.n:
        return "-"
    return f"{r.k}/{r.n} = {r.rate:.2f} [{r.low:.2f}, {r.high:.2f}]"
