"""Known answers end to end: detectors on models that never saw the items give uniform
p-values; a model trained hard on one partition gives that partition away."""
from __future__ import annotations

import numpy as np
import pytest
from audit_fixtures import copy_tokens, make_items, one_thread, tiny_model, train_on  # noqa: E402,F401
from conftest import WORDS, make_tokenizer  # noqa: E402
from scipy import stats

from audit.detectors import AuditContext, PartitionData, get_detector
from audit.engine import Engine, EngineSettings
from inject.render import encode_text
from inject.tokenizer import load_tokenizer

pytestmark = pytest.mark.usefixtures("one_thread")

N_NULL, SIZE = 200, 8  # random control partitions of SIZE items


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    pool = make_items(N_NULL * SIZE, seed=100, prefix="n")
    hot, cold = make_items(40, seed=21, prefix="h"), make_items(40, seed=22, prefix="c")
    d = tmp_path_factory.mktemp("tok")
    make_tokenizer(d, pool[:200] + hot + cold)
    return load_tokenizer(str(d)), pool, hot, cold


def context(tok, model) -> AuditContext:
    engine = Engine(model, EngineSettings(context=256, stride=128, token_budget=8192, progress=False))
    return AuditContext(engine, tok, "mcq", encode_text(tok, "\n\n"), None)


def assert_uniform(p, fpr: bool = True) -> None:
    p = np.asarray(p)
    assert stats.kstest(p, "uniform").pvalue > 0.01, np.sort(p)
    if fpr:
        assert 0.01 <= np.mean(p < 0.05) <= 0.10


@pytest.mark.slow
def test_null_p_values_are_uniform_on_a_clean_model(world):
    """Every detector with a p-value, on a model trained on clean text only (issue 9's
    calibration): KS against uniform and the false-positive rate at 0.05 in [0.01, 0.10]."""
    tok, pool, _, _ = world
    rng = np.random.default_rng(0)
    clean = " ".join(" ".join(rng.choice(WORDS, 12)) + "." for _ in range(400))
    model = train_on(tiny_model(len(tok), seed=5), encode_text(tok, clean), steps=120, lr=3e-3)
    ctx = context(tok, model)
    parts = [PartitionData("bench", f"r{i}", 0, pool[i * SIZE : (i + 1) * SIZE]) for i in range(N_NULL)]
    ordering = get_detector("ordering", {"shards": 4, "permutations": 6, "seed": 1})
    ord_p = [ordering.summarize([p], [ordering.score(ctx, p)])[0]["p"] for p in parts]
    assert_uniform(ord_p)
    shuffle = get_detector("option_shuffle", {"isolation_forest": False, "seed": 1})
    raws = [shuffle.score(ctx, p) for p in parts]
    assert_uniform([shuffle.summarize([p], [r])[0]["p"] for p, r in zip(parts, raws)])
    # calibrated: each partition against an independent control partition
    paired = [shuffle.summarize([PartitionData("bench", "x", 1, parts[i].items), parts[i + 1]], raws[i : i + 2])[0]
              for i in range(0, N_NULL, 2)]
    assert all(r["calibrated"] and r["null"] == "controls" for r in paired)
    assert_uniform([r["p"] for r in paired], fpr=False)
    successor = get_detector("successor", {"permutations": 999, "seed": 2})
    rows = successor.summarize(parts, [successor.score(ctx, p) for p in parts])
    assert_uniform([r["p"] for r in rows])
    for name in ("loss", "zlib", "min_k", "min_k_pp"):  # each partition as if injected, against the next
        mia = get_detector(name)
        raws = [mia.score(ctx, p) for p in parts]
        paired = [mia.summarize([PartitionData("bench", "x", 1, parts[i].items), parts[i + 1]], raws[i: i + 2])[0]
                  for i in range(0, N_NULL, 2)]
        assert_uniform([r["p"] for r in paired])


@pytest.mark.slow
def test_a_partition_trained_on_hard_is_detected_and_a_fresh_one_is_not(world):
    tok, _, hot, cold = world
    model = tiny_model(len(tok), seed=0)
    train_on(model, (copy_tokens(tok, hot, "mcq") + [tok.eos_token_id]) * 3, steps=300, lr=5e-3)
    ctx = context(tok, model)
    parts = [PartitionData("bench", "hot", 8, hot), PartitionData("bench", "cold", 0, cold)]
    ordering = get_detector("ordering", {"shards": 10, "permutations": 10, "seed": 1})
    o_hot, o_cold = ordering.summarize(parts, [ordering.score(ctx, p) for p in parts])
    assert o_hot["p"] < 1e-4 < 0.01 < o_cold["p"]
    shuffle = get_detector("option_shuffle", {"isolation_forest": False, "seed": 1})
    s_hot, s_cold = shuffle.summarize(parts, [shuffle.score(ctx, p) for p in parts])
    assert s_hot["p"] < 1e-4 and s_hot["calibrated"] and s_hot["rate_a"] > 0.9
    assert shuffle.summarize(parts[1:], [shuffle.score(ctx, parts[1])])[0]["p"] > 0.01  # fresh, uniform null
    acc = get_detector("accuracy", {})
    a_hot, a_cold = acc.summarize(parts, [acc.score(ctx, p) for p in parts])
    assert a_hot["accuracy"] > 0.8 and a_hot["inflation"] > 0.4 and a_hot["p"] < 1e-4
