"""Statistics with known answers: scipy agreement, log-space tails, null uniformity."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from audit.stats import (
    _log_t_sf_tail,
    fisher_greater,
    isolation_score_of_max,
    log_t_sf,
    mann_whitney_less,
    midrank_of_first,
    permutation_p,
    sharded_t_test,
    uniform_rank_test,
)


def assert_uniform(p: np.ndarray) -> None:
    """Kolmogorov-Smirnov against U(0,1) and the false-positive rate at 0.05."""
    assert stats.kstest(p, "uniform").pvalue > 0.01
    assert 0.01 <= np.mean(p < 0.05) <= 0.10


@pytest.mark.parametrize("t,df", [(0.5, 3), (3.0, 9), (30.0, 4), (1e5, 9), (50.0, 49)])
def test_log_t_sf_matches_scipy_and_its_tail_formula(t, df):
    assert log_t_sf(t, df) == pytest.approx(stats.t.logsf(t, df), rel=1e-9)
    assert _log_t_sf_tail(t, df) == pytest.approx(stats.t.logsf(t, df), rel=1e-9)


def test_log_t_sf_does_not_underflow():
    assert stats.t.sf(1e60, 9) == 0.0  # what the reference code's 1 - cdf gives
    values = [log_t_sf(t, 9) for t in (1e20, 1e60, 1e200)]
    assert all(math.isfinite(v) for v in values) and values[0] > values[1] > values[2]
    # sf ~ C t^-df far out: ten times larger t, df decades smaller p
    assert (log_t_sf(1e61, 9) - log_t_sf(1e60, 9)) / math.log(10) == pytest.approx(-9, abs=1e-6)


def test_sharded_t_test_is_a_one_sided_t_test_on_the_differences():
    rng = np.random.default_rng(0)
    canonical, shuffled = rng.normal(0.3, 1, 12), rng.normal(0, 1, (12, 7))
    res, d = sharded_t_test(canonical, shuffled)
    ref = stats.ttest_1samp(canonical - shuffled.mean(1), 0, alternative="greater")
    assert res.statistic == pytest.approx(ref.statistic) and res.p == pytest.approx(ref.pvalue)
    assert np.allclose(d, canonical - shuffled.mean(1))


def test_sharded_t_test_strong_signal_gives_tiny_finite_log10_p():
    rng = np.random.default_rng(1)
    res, _ = sharded_t_test(100 + rng.normal(0, 1e-6, 50), rng.normal(0, 1e-6, (50, 5)))
    assert res.p == 0.0 and math.isfinite(res.log10_p) and res.log10_p < -300


def test_permutation_p():
    canonical = np.array([5.0, 1.0])
    shuffled = np.array([[1.0, 2.0, 6.0], [0.0, 1.0, 3.0]])
    per_shard, pooled = permutation_p(canonical, shuffled)
    assert per_shard.tolist() == [2 / 4, 3 / 4]
    assert pooled == (1 + 1) / 4  # sums 1, 3, 9 against 6


@pytest.mark.parametrize("shift", [0.0, -0.7, 0.7])
def test_mann_whitney_matches_scipy_with_ties(shift):
    rng = np.random.default_rng(2)
    x, y = np.round(rng.normal(shift, 1, 30)), np.round(rng.normal(0, 1, 45))
    ref = stats.mannwhitneyu(x, y, alternative="less", method="asymptotic").pvalue
    assert mann_whitney_less(x, y).p == pytest.approx(ref, rel=1e-9)


def test_fisher_matches_scipy():
    for k1, n1, k2, n2 in [(30, 40, 15, 40), (3, 10, 8, 20), (40, 40, 10, 40)]:
        ref = stats.fisher_exact([[k1, n1 - k1], [k2, n2 - k2]], alternative="greater").pvalue
        assert fisher_greater(k1, n1, k2, n2).p == pytest.approx(ref, rel=1e-9)


def test_midrank_of_first():
    assert midrank_of_first(np.array([3.0, 1.0, 2.0])) == 1
    assert midrank_of_first(np.array([1.0, 3.0, 2.0])) == 3
    assert midrank_of_first(np.array([2.0, 2.0, 1.0])) == 1.5


def test_isolation_forest_flags_an_outlying_best_order():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=24)
    assert isolation_score_of_max(scores) > -0.15
    scores[0] = 20.0
    assert isolation_score_of_max(scores) < -0.2


def test_null_p_values_are_uniform_on_synthetic_scores():
    """Exchangeable canonical/shuffled scores, uniform ranks, same-distribution samples."""
    rng = np.random.default_rng(3)
    reps = 2000
    ordering = [sharded_t_test(*np.split(rng.normal(size=(10, 11)), [1], axis=1))[0].p for _ in range(reps)]
    assert_uniform(np.array(ordering).ravel())
    uniform = [uniform_rank_test(rng.integers(1, 25, 30), np.full(30, 24)).p for _ in range(reps)]
    assert_uniform(np.array(uniform))
    mwu = [mann_whitney_less(rng.integers(0, 24, 30) / 23, rng.integers(0, 24, 90) / 23).p for _ in range(reps)]
    assert_uniform(np.array(mwu))


def test_known_effects_are_detected_on_synthetic_scores():
    rng = np.random.default_rng(4)
    shuffled = rng.normal(size=(10, 30))
    assert sharded_t_test(shuffled[:, 0] + 3.0, shuffled)[0].log10_p < -4
    assert uniform_rank_test(np.ones(30), np.full(30, 24)).log10_p < -10
    assert mann_whitney_less(np.zeros(30), rng.integers(0, 24, 90) / 23).log10_p < -8
