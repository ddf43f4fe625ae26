"""Paired target-vs-reference tests (audit.reference_model): the statistics against brute force and
known distributions, every detector's paired test on a model against itself (never contaminated)
and on a planted signal, and the stage with a run's step_0 or a public model as the reference."""
from __future__ import annotations

import itertools
import math
import shutil

import numpy as np
import pytest
from audit_fixtures import (  # noqa: F401
    add_checkpoints,
    checkpointed_run,
    make_items,
    make_run_dir,
    one_thread,
    read_results,
    tiny_model,
)
from conftest import make_tokenizer
from scipy import stats as sps

import audit.stage as stage
from audit.detectors import PartitionData, get_detector
from audit.stats import SIGNED_RANK_EXACT_MAX, mcnemar_greater, signed_rank_test
from core.errors import ConfigError, SpikeinError
from launch.config import compose

pytestmark = pytest.mark.usefixtures("one_thread")


# ---- the statistics ------------------------------------------------------------------------

def brute_force_signed_rank_p(d: np.ndarray) -> float:
    """P(W+ >= observed) over all 2^n signs of the non-zero |d| (mid-ranks for ties)."""
    d = d[d != 0]
    ranks = sps.rankdata(np.abs(d))
    w = ranks[d > 0].sum()
    hits = sum(ranks[np.array(signs, dtype=bool)].sum() >= w - 1e-9
               for signs in itertools.product([0, 1], repeat=len(d)))
    return hits / 2 ** len(d)


def test_identical_scores_give_statistic_zero_and_p_one():
    r = signed_rank_test(np.zeros(40))
    assert (r.statistic, r.log_p, r.n) == (0.0, 0.0, 0)
    r = mcnemar_greater([1, 0, 1, 1], [1, 0, 1, 1])
    assert (r.statistic, r.log_p, r.n) == (0.0, 0.0, 0)


@pytest.mark.parametrize("d", [
    [0.5, -0.25, 0.25, 0.75, 0.0, 0.5, -0.5, 0.125, 1.0, 0.25],  # ties and a zero
    [3.0, 1.0, 2.0, -4.0, 5.0, 6.0, -7.0, 8.0],
    [-1.0, -1.0, -1.0, 2.0, 2.0, -3.0],
])
def test_signed_rank_p_equals_brute_force_enumeration(d):
    d = np.asarray(d)
    assert math.exp(signed_rank_test(d).log_p) == pytest.approx(brute_force_signed_rank_p(d), rel=1e-12)


def test_signed_rank_without_ties_matches_scipy_exact():
    d = np.random.default_rng(3).normal(0.3, 1.0, 25)
    ours = math.exp(signed_rank_test(d).log_p)
    theirs = sps.wilcoxon(d, alternative="greater", method="exact").pvalue
    assert ours == pytest.approx(theirs, rel=1e-9)


def test_signed_rank_normal_approximation_beyond_the_exact_range():
    d = np.random.default_rng(4).normal(0.05, 1.0, SIGNED_RANK_EXACT_MAX + 100)
    r = signed_rank_test(d)
    theirs = sps.wilcoxon(d, alternative="greater", method="approx", correction=True).pvalue
    assert r.method == "normal_approx" and math.exp(r.log_p) == pytest.approx(theirs, rel=1e-6)


def test_clean_pairs_are_flagged_at_most_at_the_nominal_rate():
    rng = np.random.default_rng(5)
    # exchangeable pairs: normalised ranks of two models drawn alike (ties included), 1000 audits
    hits = sum(signed_rank_test(rng.integers(0, 24, 40) / 23 - rng.integers(0, 24, 40) / 23).log_p < math.log(0.05)
               for _ in range(1000))
    assert hits / 1000 <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 1000)  # 3 sd above nominal


def test_planted_signal_is_found():
    rng = np.random.default_rng(6)
    reference = rng.integers(0, 24, 40) / 23
    target = np.where(rng.random(40) < 0.5, 0.0, reference)  # half the items now rank the original order first
    assert signed_rank_test(reference - target).log10_p < -3


def test_mcnemar_is_the_exact_binomial_of_the_discordant_items():
    target = np.array([1, 1, 1, 1, 1, 0, 0, 1, 0, 0])
    ref = np.array([0, 0, 0, 1, 0, 1, 0, 1, 0, 0])  # b = 4 (target right only), c = 1
    r = mcnemar_greater(target, ref)
    brute = sum(math.comb(5, k) for k in range(4, 6)) / 2 ** 5
    assert r.statistic == 3 and r.n == 5 and math.exp(r.log_p) == pytest.approx(brute, rel=1e-12)


# ---- every detector: a model against itself, and a planted signal -----------------------

def option_raw(ranks, n=24):
    return {"rank": [float(r) for r in ranks], "n_orders": [n] * len(ranks), "n_above": [0] * len(ranks),
            "iforest_max": None}


PARTS = [PartitionData("b", "all", None, make_items(30, seed=0))]


def test_option_shuffle_paired():
    det = get_detector("option_shuffle", {"isolation_forest": False, "seed": 0})
    ranks = np.random.default_rng(0).integers(1, 25, 30)
    (same,) = det.paired(PARTS, [option_raw(ranks)], [option_raw(ranks)])
    assert same["paired_statistic"] == 0 and same["paired_p"] == 1.0 and "signed-rank" in same["paired_test"]
    (hot,) = det.paired(PARTS, [option_raw(np.where(np.arange(30) < 20, 1, ranks))], [option_raw(ranks)])
    assert hot["paired_log10_p"] < -3


def test_ordering_paired():
    rng = np.random.default_rng(1)
    ref = {"canonical": rng.normal(-50, 1, 5).tolist(), "shuffled": rng.normal(-50, 1, (5, 4)).tolist()}
    hot = {"canonical": (np.asarray(ref["canonical"]) + 3 + rng.normal(0, 0.1, 5)).tolist(), "shuffled": ref["shuffled"]}
    parts = [PartitionData("b", "all", None, make_items(10, seed=0))]
    for test in ("sharded", "permutation"):
        det = get_detector("ordering", {"seed": 0, "shards": 5, "permutations": 4, "test": test})
        (same,) = det.paired(parts, [ref], [ref])
        assert same["paired_statistic"] == 0 and same["paired_p"] == 1.0, test
        (found,) = det.paired(parts, [hot], [ref])
        assert found["paired_p"] < 0.05, (test, found)
    assert found["paired_p"] == pytest.approx(1 / 32)  # 5 shards, all positive: the exact floor 2^-5


def test_successor_paired():
    rng = np.random.default_rng(2)
    m = 12
    ref = rng.normal(-30, 1, (m, m))
    hot = ref.copy()
    hot[np.arange(m - 1), np.arange(1, m)] += 5  # each injected neighbour now the best predecessor
    parts = [PartitionData("b", "all", None, make_items(m, seed=0))]
    det = get_detector("successor", {"seed": 0, "permutations": 2000, "block": m})
    (same,) = det.paired(parts, [{"S": [ref.tolist()]}], [{"S": [ref.tolist()]}])
    assert same["paired_statistic"] == 0 and same["paired_p"] == 1.0
    (found,) = det.paired(parts, [{"S": [hot.tolist()]}], [{"S": [ref.tolist()]}])
    assert found["paired_log10_p"] < -3


def test_membership_paired_without_and_with_controls():
    rng = np.random.default_rng(3)
    ref = {"score": rng.normal(-2, 0.3, 30).tolist()}
    hot = {"score": (np.asarray(ref["score"]) + 0.2 + rng.normal(0, 0.05, 30)).tolist()}
    for name in ("loss", "zlib", "min_k", "min_k_pp"):
        det = get_detector(name, {})
        (same,) = det.paired(PARTS, [ref], [ref])
        assert same["paired_statistic"] == 0 and same["paired_p"] == 1.0
        (found,) = det.paired(PARTS, [hot], [ref])
        assert found["paired_log10_p"] < -5 and found["paired_mean_ratio"] > 0
    # with controls: the ratio vs the controls' ratio; a target better on every item alike is not a member
    parts = [PartitionData("b", "x4", 4, make_items(30, seed=0)), PartitionData("b", "x0", 0, make_items(30, seed=1))]
    ctl_ref = {"score": rng.normal(-2, 0.3, 30).tolist()}
    ctl_all_better = {"score": (np.asarray(ctl_ref["score"]) + 0.2 + rng.normal(0, 0.05, 30)).tolist()}
    found, ctl = get_detector("loss", {}).paired(parts, [hot, ctl_all_better], [ref, ctl_ref])
    assert "controls" in found["paired_test"] and found["paired_p"] > 0.01
    assert ctl["paired_p"] is None  # the only control has no other control to be compared with


def test_accuracy_paired():
    det = get_detector("accuracy", {})
    ref = {"correct": [1, 0, 0, 1] * 5}
    (same,) = det.paired(PARTS[:1], [ref], [ref])
    assert same["paired_statistic"] == 0 and same["paired_p"] == 1.0
    (found,) = det.paired(PARTS[:1], [{"correct": [1] * 20}], [ref])
    assert found["paired_p"] == pytest.approx(0.5 ** 10) and "McNemar" in found["paired_test"]


# ---- the stage ------------------------------------------------------------------------------

FAST = ["audit.ordering.shards=3", "audit.ordering.permutations=4", "audit.option_shuffle.isolation_forest=false",
        "audit.context=256", "audit.stride=128", "audit.progress=false", "experiment_name=t", "logger.mode=disabled",
        "audit.successor.permutations=200", "audit.detectors=[ordering,option_shuffle,successor,accuracy,loss]"]


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    parts = {"hot": (4, make_items(9, seed=1, prefix="h")), "ctl0": (0, make_items(9, seed=2, prefix="a"))}
    return checkpointed_run(tmp_path_factory.mktemp("run"), parts)


@pytest.fixture
def run(template, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(template, dst)
    return dst


@pytest.mark.slow
def test_step_0_reference_adds_paired_tests_and_step_0_against_itself_is_clean(run):
    cfg = compose([f"run_dir={run}", *FAST, "audit.reference_model=step_0"])
    assert stage.run_audit(cfg) == 0
    rows = read_results(run)
    assert len(rows) == 2 * 2 * 5
    for r in rows:
        assert r["reference"] == "step_0" and r["settings"]["reference"] == "step_0"
        if r["detector"] == "loss" and r["count"] == 0:  # the only control: no control to compare it with
            assert r["paired_p"] is None
            continue
        assert r["paired_test"] and r["paired_p"] is not None, r
        if r["step"] == 0:  # the reference against itself: identical scores
            neutral = 0.5 if "controls" in r["paired_test"] else 0  # AUROC of the reference-ratio vs the controls
            assert r["paired_statistic"] == neutral and r["paired_p"] == 1.0, r
    # the reference's scores are step_0's own: cached once, shared with its audit
    assert not (run / "audit" / "raw" / "step_0" / "bench" / "ordering" / "x0").exists()
    # the same run without a reference: other rows (its settings lack the reference), the scores reused
    before = len(read_results(run))
    assert stage.run_audit(compose([f"run_dir={run}", *FAST])) == 0
    plain = read_results(run)[before:]
    assert len(plain) == 20 and all("paired_p" not in r and "reference" not in r["settings"] for r in plain)
    paired_p = {(r["step"], r["partition"], r["detector"]): r["p"] for r in rows}
    assert {(r["step"], r["partition"], r["detector"]): r["p"] for r in plain} == paired_p  # same scores


def test_unknown_reference_step_is_one_line(run, monkeypatch):
    monkeypatch.setattr(stage, "load_model", lambda *a, **k: pytest.fail("scored before the reference was checked"))
    with pytest.raises(SpikeinError, match=r"audit.reference_model=step_5: no checkpoint .*\(have: step_0, step_10\)"):
        stage.run_audit(compose([f"run_dir={run}", *FAST, "audit.reference_model=step_5"]))


def test_step_reference_with_a_public_model_is_refused():
    with pytest.raises(ConfigError, match="audit.reference_model=step_0"):
        from core.config import validate_config

        validate_config(compose(["audit.model=gpt2", "audit.reference_model=step_0"]))


def test_reference_with_another_tokenizer_is_refused_before_scoring(run, tmp_path, monkeypatch):
    other = tmp_path / "other"
    make_tokenizer(other, make_items(5, seed=9), vocab_size=300, seed=7)
    tiny_model(300, seed=2).save_pretrained(other)

    def no_scoring(*a, **k):
        raise AssertionError("scored before the tokenizer check")

    monkeypatch.setattr(stage, "load_model", no_scoring)
    with pytest.raises(SpikeinError, match=rf"^audit.reference_model={other}: its tokenizer \(\w+\) differs"):
        stage.run_audit(compose([f"run_dir={run}", *FAST, f"audit.reference_model={other}"]))
    assert not (run / "audit" / "results.jsonl").exists()
