"""The successor test: exact p against brute force, calibration under the null, power."""
from __future__ import annotations

import itertools
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from audit_fixtures import copy_tokens, make_items, one_thread, tiny_model, train_on  # noqa: E402,F401
from conftest import SHARED_DATA, make_tokenizer, shared_data  # noqa: E402
from scipy import stats

from audit.detectors import AuditContext, PartitionData, get_detector
from audit.engine import Engine, EngineSettings
from audit.stats import column_ranks, path_sum_moments, path_sums
from core.errors import SpikeinError
from inject.render import encode_items, encode_text, join_token_lists, render_mcq
from inject.tokenizer import load_tokenizer

pytestmark = pytest.mark.usefixtures("one_thread")


def assert_uniform(p, fpr: bool = True) -> None:
    p = np.asarray(p)
    assert stats.kstest(p, "uniform").pvalue > 0.01, np.sort(p)
    if fpr:
        assert 0.01 <= np.mean(p < 0.05) <= 0.10


def rows_for(det, matrices_per_part, counts=None):
    """Summaries of synthetic S matrices (one list of block matrices per partition)."""
    counts = counts or [0] * len(matrices_per_part)
    parts = [PartitionData("b", f"p{i}", c, []) for i, c in enumerate(counts)]
    return det.summarize(parts, [{"S": [m.tolist() for m in ms]} for ms in matrices_per_part])


def brute_force_p(s_blocks) -> float:
    """#{orders with T <= T(identity)} / #orders over every within-block order, from scratch."""
    ranks = []
    for s in s_blocks:
        m = len(s)
        r = np.zeros((m, m))
        for b in range(m):
            others = [x for x in range(m) if x != b]
            rk = stats.rankdata([-s[x, b] for x in others]) - 1
            r[others, b] = rk / max(m - 2, 1)
        ranks.append(r)
    def t_of(orders):
        return sum(sum(r[o[k - 1], o[k]] for k in range(1, len(o))) for r, o in zip(ranks, orders))
    t0 = t_of([range(len(r)) for r in ranks])
    all_t = [t_of(c) for c in itertools.product(*[itertools.permutations(range(len(r))) for r in ranks])]
    return float(np.mean(np.array(all_t) <= t0 + 1e-9))


def test_column_ranks_best_predecessor_zero_ties_mid_rank():
    s = np.array([[0, 5, 1, 1], [3, 0, 1, 2], [2, 4, 0, 2], [1, 3, 7, 0]], dtype=float)
    r = column_ranks(s)
    assert r[1, 0] == 0 and r[2, 0] == 0.5 and r[3, 0] == 1  # column 0: 3 > 2 > 1
    assert r[3, 2] == 0 and r[0, 2] == r[1, 2] == 0.75  # tied second and third: mid-rank 1.5 / 2
    assert np.all(np.diag(r) == 0)


@pytest.mark.parametrize("m", [2, 3, 4, 5, 7])
def test_null_moments_equal_enumeration(m):
    r = column_ranks(np.random.default_rng(m).normal(size=(m, m)))
    t = path_sums(r, np.array(list(itertools.permutations(range(m)))))
    mean, var = path_sum_moments(r)
    assert mean == pytest.approx(t.mean()) and var == pytest.approx(t.var(), abs=1e-12)


@pytest.mark.parametrize("sizes,boost", [((6,), 0.0), ((6,), 0.8), ((3, 4), 0.5), ((3, 3), 0.0)])
def test_exact_p_equals_brute_force_enumeration(sizes, boost):
    rng = np.random.default_rng(sum(sizes))
    blocks = []
    for m in sizes:
        s = rng.normal(size=(m, m)).round(1)  # rounding makes ties
        s[np.arange(m - 1), np.arange(1, m)] += boost  # the injected neighbours a little likelier
        blocks.append(s)
    want = brute_force_p(blocks)
    exact = rows_for(get_detector("successor", {"permutations": 720, "seed": 0}), [blocks])[0]
    assert exact["p_method"] == "exact" and exact["p"] == pytest.approx(want, rel=1e-12)
    n = math.prod(math.factorial(m) for m in sizes) - 1  # one short of enumerating: random orders
    mc = [rows_for(get_detector("successor", {"permutations": n, "seed": seed}), [blocks])[0] for seed in range(20)]
    assert all(r["p_method"] == "monte_carlo" for r in mc)
    assert abs(np.mean([r["p"] for r in mc]) - want) < 4 * np.sqrt(want * (1 - want) / (20 * n)) + 1.0 / n


def test_null_p_values_uniform_on_synthetic_scores():
    rng = np.random.default_rng(0)
    det = get_detector("successor", {"permutations": 999, "seed": 1})
    mats = [[rng.normal(size=(20, 20)) for _ in range(2)] for _ in range(400)]  # T nearly continuous
    rows = rows_for(det, mats)
    assert_uniform([r["p"] for r in rows])
    assert all(r["control_p"] is not None for r in rows)
    # calibrated control comparison: each partition against one independent control
    paired = [rows_for(det, mats[i : i + 2], [1, 0])[0]["control_p"] for i in range(0, 400, 2)]
    assert_uniform(paired, fpr=False)


def test_planted_successors_are_found_and_the_floor_is_labelled():
    rng = np.random.default_rng(1)
    s = rng.normal(size=(40, 40))
    weak = s.copy()
    weak[np.arange(39), np.arange(1, 40)] += 1.0
    strong = s.copy()
    strong[np.arange(39), np.arange(1, 40)] += 4.0
    det = get_detector("successor", {"permutations": 2000, "seed": 0})
    null, w, st = rows_for(det, [[s], [weak], [strong]], [0, 4, 16])
    assert null["p"] > 0.01 and w["log10_p"] < -2.5
    assert st["p_method"] == "normal_approx" and st["log10_p_mc"] == pytest.approx(-np.log10(2001))
    assert st["log10_p"] < -10 and st["log10_p"] == st["log10_p_normal"]
    assert w["control_log10_p"] < -2 and st["control_log10_p"] < -2  # against the clean control


def test_settings_are_checked():
    with pytest.raises(SpikeinError, match="successor.block"):
        get_detector("successor", {"block": 2, "seed": 0})
    with pytest.raises(SpikeinError, match="at least 3"):
        get_detector("successor", {"seed": 0}).check(PartitionData("b", "tiny", 1, make_items(2)))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    pool = make_items(60 * 10, seed=100, prefix="n")
    hot, cold = make_items(20, seed=21, prefix="h"), make_items(20, seed=22, prefix="c")
    d = tmp_path_factory.mktemp("tok")
    make_tokenizer(d, pool[:200] + hot + cold)
    return load_tokenizer(str(d)), pool, hot, cold


def context(tok, model, bos=None) -> AuditContext:
    engine = Engine(model, EngineSettings(context=256, stride=128, token_budget=8192, progress=False))
    return AuditContext(engine, tok, "mcq", encode_text(tok, "\n\n"), bos)


@pytest.mark.parametrize("bos", [None, 1])
def test_pairs_are_tokenized_as_injection_joins_neighbours(world, bos):
    tok, pool, _, _ = world
    items = pool[:7]
    det = get_detector("successor", {"block": 4, "seed": 0})
    ctx = context(tok, tiny_model(len(tok)), bos)
    groups = det.groups(ctx, PartitionData("b", "p", 1, items))
    toks = encode_items(tok, items, "mcq")
    blocks = [range(0, 4), range(4, 7)]  # 7 items, block 4: balanced blocks of 4 and 3
    want = [(x, b) for blk in blocks for x in blk for b in blk if b != x]
    got = [(g.prefix, c) for g in groups for c in g.continuations]
    assert len(got) == len(want)
    for (prefix, cont), (x, b) in zip(got, want):
        assert list(prefix) + list(cont) == join_token_lists([toks[x], toks[b]], ctx.separator_ids, bos)
        assert list(cont) == toks[b]


@pytest.mark.slow
def test_null_p_values_uniform_on_a_random_init_model(world):
    tok, pool, _, _ = world
    ctx = context(tok, tiny_model(len(tok), seed=4))
    det = get_detector("successor", {"permutations": 999, "seed": 2})
    parts = [PartitionData("b", f"r{i}", 0, pool[i * 10 : (i + 1) * 10]) for i in range(60)]
    rows = det.summarize(parts, [det.score(ctx, p) for p in parts])
    assert_uniform([r["p"] for r in rows], fpr=False)  # 60 partitions: KS only
    assert all(r["p_method"] == "monte_carlo" for r in rows)


@pytest.mark.slow
def test_memorised_order_is_found_and_a_fresh_partition_is_not(world):
    tok, _, hot, cold = world
    model = train_on(tiny_model(len(tok), seed=0), (copy_tokens(tok, hot, "mcq") + [tok.eos_token_id]) * 3,
                     steps=200, lr=5e-3)
    ctx = context(tok, model)
    parts = [PartitionData("b", "hot", 8, hot), PartitionData("b", "cold", 0, cold)]
    det = get_detector("successor", {"permutations": 9999, "seed": 1})
    n0 = ctx.scorer.tokens_scored
    r_hot, r_cold = det.summarize(parts, [det.score(ctx, p) for p in parts])
    assert r_hot["log10_p"] < -4 and r_cold["p"] > 0.01
    assert r_hot["control_log10_p"] < -3
    assert ctx.scorer.tokens_scored - n0 == 19 * sum(len(t) for t in encode_items(tok, hot + cold, "mcq"))


@pytest.mark.slow
def test_bench_compares_successor_and_ordering_on_a_run(tmp_path):
    """bench/successor_bench.py on a run whose one partition was trained on: both tests and their costs."""
    sys.path.insert(0, str(Path(__file__).parents[2] / "bench"))
    from audit_fixtures import add_checkpoints, make_run_dir
    from successor_bench import compare

    hot, ctl = make_items(20, seed=31, prefix="h"), make_items(20, seed=32, prefix="c")
    make_tokenizer(tmp_path / "tok", hot + ctl)
    tok = load_tokenizer(str(tmp_path / "tok"))
    run, _ = make_run_dir(tmp_path / "run", tmp_path / "tok", {"hot": (8, hot), "ctl": (0, ctl)})
    trained = train_on(tiny_model(len(tok), seed=0), (copy_tokens(tok, hot, "mcq") + [tok.eos_token_id]) * 3,
                       steps=200, lr=5e-3)
    add_checkpoints(run, {0: tiny_model(len(tok), seed=1), 200: trained}, tmp_path / "tok")
    records = compare(run, "all", blocks=(20, 7), permutations=9999, shards=4, ordering_perms=10, context=512)
    got = {(r["step"], r["partition"], r["detector"].split("(")[0] + r["detector"][-3:]): r for r in records}
    assert len(records) == 2 * 2 * 3
    for r in records:
        assert r["tokens_scored"] > 0 and r["tokens_run"] > 0 and r["wall_s"] >= 0
    small, ordering = got[200, "hot", "successor=7)"], got[200, "hot", "ordering10)"]
    assert small["tokens_scored"] < ordering["tokens_scored"]  # 6 predecessors per item vs 11 orders per shard
    assert small["log10_p"] < min(-3, ordering["log10_p"])  # more power at fewer scored tokens
    assert got[200, "hot", "successor20)"]["log10_p"] < -4 and got[200, "ctl", "successor20)"]["log10_p"] > -2
    assert all(got[0, p, d]["log10_p"] > -2 for p in ("hot", "ctl") for d in ("successor=7)", "successor20)"))


MMLU = SHARED_DATA / "benchmarks" / "mmlu" / "test"


def subject_sorted_partitions(items, subjects: int, per_subject: int, reps: int, seed: int):
    """``reps`` partitions of ``subjects`` random subjects x ``per_subject`` short items each,
    in file (subject-sorted) order and the same items in a seeded random order (with that order)."""
    by: dict[str, list] = {}
    for it in items:
        if len(render_mcq(it)) < 220:
            by.setdefault(it.subject, []).append(it)
    names = sorted(s for s, its in by.items() if len(its) >= per_subject)
    rng = np.random.default_rng(seed)
    out = []
    for r in range(reps):
        chosen = sorted(rng.choice(names, subjects, replace=False))
        file_order = [it for s in chosen for it in by[s][:per_subject]]
        perm = rng.permutation(len(file_order))
        shuffled = [file_order[i] for i in perm]
        out.append((PartitionData("mmlu", f"sorted{r}", 0, file_order), PartitionData("mmlu", f"shuffled{r}", 0, shuffled),
                    perm))
    return out


@pytest.mark.slow
@shared_data(MMLU)
def test_subject_sorted_order_gives_false_positives_and_a_shuffled_order_does_not():
    """Issue 9 section 1: a pretrained model that never saw these items finds same-subject
    neighbours likelier, so a file-ordered partition of MMLU looks memorised; the same items
    in a seeded random order (what inject.item_order=shuffled injects) are nominal."""
    from real_model import smollm2_dir

    from audit.model import load_model
    from inject.benchmarks import load_benchmark
    from inject.tokenizer import special_ids

    path = smollm2_dir()
    tok, model = load_tokenizer(str(path)), load_model(str(path), "fp32", "cpu")
    torch.set_num_threads(2)
    ctx = AuditContext(Engine(model, EngineSettings(context=1024, stride=512, progress=False)), tok, "mcq",
                       encode_text(tok, "\n\n"), special_ids(tok).bos)
    items = load_benchmark("mmlu", {"source": "mmlu_dir", "path": str(MMLU)})
    det = get_detector("successor", {"permutations": 9999, "seed": 0})
    p_sorted, p_shuffled = [], []
    for file_order, shuffled, perm in subject_sorted_partitions(items, subjects=3, per_subject=4, reps=2, seed=0):
        # one block: S[x, b] = log p(b | x) does not depend on the order, so the shuffled
        # partition's matrix is the sorted one's, permuted (half the model calls)
        assert det.blocks(len(perm)) == [slice(0, len(perm))]
        raw = det.score(ctx, file_order)
        raw_shuffled = {"S": [np.asarray(raw["S"][0])[np.ix_(perm, perm)].tolist()]}
        p_sorted.append(det.summarize([file_order], [raw])[0]["p"])
        p_shuffled.append(det.summarize([shuffled], [raw_shuffled])[0]["p"])
    fisher = [stats.combine_pvalues(p, method="fisher").pvalue for p in (p_sorted, p_shuffled)]
    assert fisher[0] < 1e-3 and max(p_sorted) < 0.05, p_sorted  # every subject-sorted partition a false positive
    assert fisher[1] > 0.01 and min(p_shuffled) > 0.01, p_shuffled
