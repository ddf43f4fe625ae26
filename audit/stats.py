"""The detectors' statistics, with p-values kept in log space (strong contamination gives
p far below the smallest double; the reference code's ``1 - cdf`` underflows to 0).

All ``log_p`` values are natural logs; ``log10_p = log_p / ln 10``.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy import special, stats

LN10 = math.log(10.0)


@dataclass(frozen=True)
class TestResult:
    statistic: float
    log_p: float  # natural log of the one-sided p-value

    @property
    def p(self) -> float:
        return math.exp(self.log_p)

    @property
    def log10_p(self) -> float:
        return self.log_p / LN10


def log_t_sf(t: float, df: float) -> float:
    """ln P(T > t) for Student's t with ``df`` degrees of freedom, finite for any finite t.

    Far in the tail: P(T > t) = I_x(df/2, 1/2) / 2 with x = df / (df + t^2), and
    I_x(a, b) = x^a (1-x)^b 2F1(a+b, 1; a+1; x) / (a B(a, b)), evaluated in logs.
    """
    if math.isnan(t):
        return float("nan")
    p = stats.t.sf(t, df)
    if p > 1e-280 or t <= 0:
        return math.log(p) if p > 0 else float("-inf")
    return float("-inf") if math.isinf(t) else _log_t_sf_tail(t, df)


def _log_t_sf_tail(t: float, df: float) -> float:
    a, b = df / 2.0, 0.5
    log_x = math.log(df) - 2.0 * math.log(t) - math.log1p(df / (t * t))
    x = math.exp(log_x)
    return (
        math.log(0.5) + a * log_x + b * math.log1p(-x) - math.log(a) - special.betaln(a, b)
        + math.log(special.hyp2f1(a + b, 1.0, a + 1.0, x))
    )


def sharded_t_test(canonical: np.ndarray, shuffled: np.ndarray) -> tuple[TestResult, np.ndarray]:
    """Oren et al.'s sharded test: d_i = canonical_i - mean_j shuffled_ij, one-sided t-test on d.

    ``canonical``: (r,), ``shuffled``: (r, m). Returns the test and the differences d.
    """
    d = np.asarray(canonical, dtype=np.float64) - np.asarray(shuffled, dtype=np.float64).mean(axis=1)
    r = len(d)
    if r < 2:
        return TestResult(float("nan"), float("nan")), d
    sd = d.std(ddof=1)
    if sd == 0:
        t = math.inf if d.mean() > 0 else (-math.inf if d.mean() < 0 else 0.0)
        return TestResult(t, float("-inf") if t > 0 else 0.0), d
    t = float(d.mean() / (sd / math.sqrt(r)))
    return TestResult(t, log_t_sf(t, r - 1)), d


def permutation_p(canonical: np.ndarray, shuffled: np.ndarray) -> tuple[np.ndarray, float]:
    """Exact permutation p-values ``(1 + #{perm >= canonical}) / (m + 1)``: per shard, and pooled.

    Pooled: the sum over shards of canonical against the sum of the j-th permutation of
    every shard (a uniformly random joint permutation under the null).
    """
    c = np.asarray(canonical, dtype=np.float64)
    s = np.asarray(shuffled, dtype=np.float64)
    m = s.shape[1]
    per_shard = (1 + (s >= c[:, None]).sum(axis=1)) / (m + 1)
    pooled = (1 + int((s.sum(axis=0) >= c.sum()).sum())) / (m + 1)
    return per_shard, float(pooled)


def midrank_of_first(scores: np.ndarray) -> float:
    """Rank of ``scores[0]`` among all (1 = highest), ties sharing the mean rank."""
    s = np.asarray(scores, dtype=np.float64)
    return 1.0 + float((s[1:] > s[0]).sum()) + 0.5 * float((s[1:] == s[0]).sum())


def mann_whitney_less(x: np.ndarray, y: np.ndarray) -> TestResult:
    """Mann-Whitney U for "x tends to be smaller than y": normal approximation with tie and
    continuity correction (scipy's ``method='asymptotic'``), the p-value kept in logs.

    ``statistic`` is z, positive when x is smaller.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n1, n2 = len(x), len(y)
    if n1 == 0 or n2 == 0:
        return TestResult(float("nan"), float("nan"))
    ranks = stats.rankdata(np.concatenate([x, y]))
    u1 = ranks[:n1].sum() - n1 * (n1 + 1) / 2.0
    n = n1 + n2
    _, ties = np.unique(ranks, return_counts=True)
    var = n1 * n2 / 12.0 * ((n + 1) - (ties**3 - ties).sum() / (n * (n - 1)))
    if var <= 0:
        return TestResult(0.0, 0.0)
    z = (n1 * n2 / 2.0 - u1 - 0.5) / math.sqrt(var)
    return TestResult(float(z), float(stats.norm.logsf(z)))


def uniform_rank_test(ranks: np.ndarray, n_orders: np.ndarray) -> TestResult:
    """Are the original orders' ranks smaller than uniform on 1..n? (no-control null)

    Under exchangeable option orders rank_i is uniform on 1..n_i (mean (n+1)/2, variance
    (n^2-1)/12); the summed rank is compared by a continuity-corrected normal approximation.
    ``statistic`` is z, positive when ranks are small.
    """
    r, n = np.asarray(ranks, dtype=np.float64), np.asarray(n_orders, dtype=np.float64)
    var = ((n**2 - 1) / 12.0).sum()
    if len(r) == 0 or var <= 0:
        return TestResult(float("nan"), float("nan"))
    z = (((n + 1) / 2.0).sum() - r.sum() - 0.5) / math.sqrt(var)
    return TestResult(float(z), float(stats.norm.logsf(z)))


def fisher_greater(k1: int, n1: int, k2: int, n2: int) -> TestResult:
    """One-sided Fisher exact test: is k1/n1 (partition correct) above k2/n2 (controls)?

    ``statistic`` is the difference in proportions.
    """
    if n1 == 0 or n2 == 0:
        return TestResult(float("nan"), float("nan"))
    log_p = float(stats.hypergeom.logsf(k1 - 1, n1 + n2, k1 + k2, n1))
    return TestResult(k1 / n1 - k2 / n2, min(log_p, 0.0))


def isolation_score_of_max(scores: np.ndarray) -> float:
    """Ni et al.'s scenario b: IsolationForest(n_estimators=100, random_state=42) fitted on an
    item's order scores; the decision-function value of the best-scoring order."""
    from sklearn.ensemble import IsolationForest

    x = np.asarray(scores, dtype=np.float64).reshape(-1, 1)
    clf = IsolationForest(n_estimators=100, contamination="auto", random_state=42).fit(x)
    return float(clf.decision_function(x)[int(np.argmax(x[:, 0]))])


# --- successor test -----------------------------------------------------------------------

def column_ranks(s: np.ndarray) -> np.ndarray:
    """r[x, b]: normalised rank of s[x, b] among column b's candidates x != b (0 = the best
    predecessor of b, 1 = the worst, ties mid-rank); the diagonal is 0 and never used."""
    a = -np.asarray(s, dtype=np.float64)
    m = len(a)
    np.fill_diagonal(a, np.inf)  # ranked last in its column: the others' ranks are unchanged
    r = (stats.rankdata(a, axis=0) - 1.0) / max(m - 2, 1)
    np.fill_diagonal(r, 0.0)
    return r


def path_sums(r: np.ndarray, orders: np.ndarray) -> np.ndarray:
    """T(sigma) = sum_k r[sigma[k-1], sigma[k]] for each row sigma of ``orders``."""
    return r[orders[:, :-1], orders[:, 1:]].sum(axis=1)


def path_sum_moments(r: np.ndarray) -> tuple[float, float]:
    """Exact mean and variance of T(sigma) for a uniformly random order sigma of r's items.

    T sums m-1 entries r[a, b] (a != b); consecutive terms share one item head to tail
    (r[a, b] r[b, c]), the other pairs of terms touch four distinct items.
    """
    a = np.asarray(r, dtype=np.float64).copy()
    np.fill_diagonal(a, 0.0)
    m = len(a)
    if m < 2:
        return 0.0, 0.0
    row, col, total = a.sum(1), a.sum(0), a.sum()
    sq, cross = (a * a).sum(), (a * a.T).sum()
    mean1, mean2 = total / (m * (m - 1)), sq / (m * (m - 1))
    var = (m - 1) * (mean2 - mean1**2)
    if m >= 3:
        chain = ((col * row).sum() - cross) / (m * (m - 1) * (m - 2))
        var += 2 * (m - 2) * (chain - mean1**2)
    if m >= 4:
        disjoint = (total**2 - (row**2).sum() - (col**2).sum() - 2 * (col * row).sum() + sq + cross)
        disjoint /= m * (m - 1) * (m - 2) * (m - 3)
        var += ((m - 1) * (m - 2) - 2 * (m - 2)) * (disjoint - mean1**2)
    return float((m - 1) * mean1), float(max(var, 0.0))


@dataclass(frozen=True)
class SuccessorResult:
    statistic: float  # T of the injected order (low: true neighbours are each other's best predecessors)
    log_p: float  # the reported p: exact, Monte Carlo, or (below the Monte Carlo floor) normal
    method: str  # exact | monte_carlo | normal_approx
    log_p_mc: float | None  # (1 + #{T(sigma) <= T}) / (N + 1); None when enumerated
    log_p_normal: float  # normal approximation with T's exact mean and variance
    orders: int  # random orders drawn, or all orders enumerated
    mean: float
    sd: float


TIE = 1e-9  # T values are sums of rank multiples; equal sums may differ in the last bits


def _enumerated(ranks: list[np.ndarray]) -> np.ndarray:
    """T over every combination of within-block orders (the blocks' sums, all combinations)."""
    total = np.zeros(1)
    for r in ranks:
        perms = np.array(list(itertools.permutations(range(len(r)))), dtype=np.int64)
        total = np.add.outer(total, path_sums(r, perms)).ravel()
    return total


def _monte_carlo(ranks: list[np.ndarray], n: int, rng: np.random.Generator, chunk: int = 8192) -> np.ndarray:
    """T of ``n`` random orders, each block permuted independently (vectorised, in chunks)."""
    out = np.zeros(n)
    for lo in range(0, n, chunk):
        k = min(chunk, n - lo)
        for r in ranks:
            orders = rng.permuted(np.tile(np.arange(len(r)), (k, 1)), axis=1)
            out[lo : lo + k] += path_sums(r, orders)
    return out


def successor_test(ranks: list[np.ndarray], permutations: int, rng: np.random.Generator) -> SuccessorResult:
    """Is the injected order (each block's identity order) a path of unusually good predecessors?

    Exact under the null (the injected order is independent of the model): every order of
    the items within blocks is equally likely, so T of random orders on the same ranks is
    T's null distribution. All orders are enumerated when there are at most ``permutations``.
    """
    t = float(sum(np.trace(r, offset=1) for r in ranks))
    moments = [path_sum_moments(r) for r in ranks]
    mean, var = sum(m for m, _ in moments), sum(v for _, v in moments)
    sd = math.sqrt(var)
    log_normal = float(stats.norm.logcdf((t - mean) / sd)) if sd > 0 else 0.0
    if math.prod(math.factorial(len(r)) for r in ranks) <= permutations:
        null = _enumerated(ranks)
        log_p = math.log(float(np.mean(null <= t + TIE)))
        return SuccessorResult(t, log_p, "exact", None, log_normal, len(null), mean, sd)
    null = _monte_carlo(ranks, permutations, rng)
    hits = int((null <= t + TIE).sum())
    log_mc = math.log((1 + hits) / (permutations + 1))
    if hits == 0 and log_normal < log_mc:  # at the floor: the approximation says how far below
        return SuccessorResult(t, log_normal, "normal_approx", log_mc, log_normal, permutations, mean, sd)
    return SuccessorResult(t, log_mc, "monte_carlo", log_mc, log_normal, permutations, mean, sd)


# --- paired target-vs-reference tests (audit.reference_model) ------------------------------

SIGNED_RANK_EXACT_MAX = 400  # non-zero pairs up to which the signed-rank null is enumerated (DP)
_DECIMALS = 12  # |d| equal to this many decimals are ties (differences of equal sums differ in the last bits)


@dataclass(frozen=True)
class PairedResult:
    statistic: float  # W+ - E[W+] (signed rank), b - c (McNemar), t (paired t): 0 when nothing differs
    log_p: float  # one-sided: the target's scores exceed the reference's
    method: str  # exact | normal_approx
    n: int  # pairs that differ (the ones the test uses)

    @property
    def log10_p(self) -> float:
        return self.log_p / LN10

    def as_test(self) -> TestResult:
        return TestResult(self.statistic, self.log_p)


def signed_rank_test(d: np.ndarray) -> PairedResult:
    """Wilcoxon signed-rank test for "the differences d tend to be positive" (one-sided).

    Zero differences are dropped (Wilcoxon's rule), tied |d| share their mid-rank. The null:
    each pair's two values are exchangeable, so every sign of the non-zero d is equally
    likely given |d|; W+ (the summed ranks of the positive d) is enumerated exactly over the
    2^n signs by dynamic programming on doubled (integer) mid-ranks up to
    ``SIGNED_RANK_EXACT_MAX`` pairs, beyond that the tie-corrected normal approximation with
    continuity correction. Identical scores (every d = 0): statistic 0, p = 1.
    """
    d = np.asarray(d, dtype=np.float64)
    d = d[np.isfinite(d)]
    d = d[np.round(np.abs(d), _DECIMALS) > 0]
    n = len(d)
    if n == 0:
        return PairedResult(0.0, 0.0, "exact", 0)
    ranks = stats.rankdata(np.round(np.abs(d), _DECIMALS))
    w = float(ranks[d > 0].sum())
    mean = n * (n + 1) / 4.0
    if n <= SIGNED_RANK_EXACT_MAX:
        return PairedResult(w - mean, _signed_rank_exact_log_sf(ranks, w), "exact", n)
    _, ties = np.unique(ranks, return_counts=True)
    var = n * (n + 1) * (2 * n + 1) / 24.0 - (ties**3 - ties).sum() / 48.0
    z = (w - mean - 0.5) / math.sqrt(var) if var > 0 else 0.0
    return PairedResult(w - mean, float(stats.norm.logsf(z)), "normal_approx", n)


def _signed_rank_exact_log_sf(ranks: np.ndarray, w: float) -> float:
    """ln P(W+ >= w) when each rank joins W+ with probability 1/2, independently."""
    doubled = np.rint(2 * np.asarray(ranks)).astype(np.int64)  # mid-ranks are multiples of 1/2
    dist = np.zeros(int(doubled.sum()) + 1)
    dist[0] = 1.0
    top = 0
    for r in doubled:
        shifted = np.zeros_like(dist)
        shifted[r:top + r + 1] = dist[:top + 1]
        dist = 0.5 * (dist + shifted)
        top += r
    tail = float(dist[int(round(2 * w)):].sum())
    return min(0.0, math.log(tail)) if tail > 0 else float("-inf")


def mcnemar_greater(target_correct: np.ndarray, reference_correct: np.ndarray) -> PairedResult:
    """Exact one-sided McNemar test: does the target answer correctly more items than the
    reference, on the same items? b = target right / reference wrong, c = the reverse;
    under the null each discordant item is b or c with probability 1/2. statistic = b - c."""
    t = np.asarray(target_correct, dtype=bool)
    r = np.asarray(reference_correct, dtype=bool)
    b, c = int((t & ~r).sum()), int((~t & r).sum())
    if b + c == 0:
        return PairedResult(0.0, 0.0, "exact", 0)
    return PairedResult(float(b - c), min(0.0, float(stats.binom.logsf(b - 1, b + c, 0.5))), "exact", b + c)
