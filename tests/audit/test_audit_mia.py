"""Membership-inference baselines: the engine's per-token statistics, the four scores and
their signs, one forward pass for all four, calibration under the null, power."""
from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch
from audit_fixtures import copy_tokens, make_items, one_thread, tiny_model, train_on  # noqa: E402,F401
from conftest import make_tokenizer  # noqa: E402
from scipy import stats

from audit.detectors import AuditContext, PartitionData, get_detector
from audit.detectors.mia import item_sequences, membership_fields
from audit.engine import Engine, EngineSettings
from audit.naive import NaiveScorer
from audit.requests import Group, Request, TokenStats
from audit.tree_rows import tree_row
from core.errors import SpikeinError
from inject.render import encode_text, render_mcq
from inject.tokenizer import load_tokenizer

pytestmark = pytest.mark.usefixtures("one_thread")

V = 97
MIA = ("loss", "zlib", "min_k", "min_k_pp")


def assert_uniform(p, fpr: bool = True) -> None:
    p = np.asarray(p)
    assert stats.kstest(p, "uniform").pvalue > 0.01, np.sort(p)
    if fpr:
        assert 0.01 <= np.mean(p < 0.05) <= 0.10


def direct_stats(model, tokens: list[int]) -> tuple[np.ndarray, ...]:
    """One sequence alone, in float64: log p(target), E_p[log p], sd_p[log p] at each position."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([tokens])).logits[0, :-1].double()
    logp = torch.log_softmax(logits, -1)
    p = logp.exp()
    mean = (p * logp).sum(-1)
    sd = (p * (logp - mean[:, None]) ** 2).sum(-1).sqrt()
    return logp[torch.arange(len(tokens) - 1), torch.tensor(tokens[1:])].numpy(), mean.numpy(), sd.numpy()


def test_token_stats_match_each_sequence_alone_and_sum_to_the_sequence_scores():
    model = tiny_model(V, seed=1)
    rng = np.random.default_rng(0)
    reqs = [Request(rng.integers(0, V, int(rng.integers(2, 60))).tolist()) for _ in range(17)]
    engine = Engine(model, EngineSettings(context=256, stride=128, token_budget=300, progress=False))
    passes = []
    model.register_forward_hook(lambda m, a, o: passes.append(1))
    got = engine.token_stats(reqs)
    assert 1 < len(passes) < len(reqs)  # batched, several rows per pass
    for r, s in zip(reqs, got):
        want = direct_stats(model, list(r.tokens))
        for a, b in zip((s.logprob, s.mean, s.std), want):
            assert a.shape == b.shape and np.abs(a - b).max() < 1e-4
    sums = engine.score(reqs)
    assert np.abs(np.array([s.logprob.sum() for s in got]) - sums).max() < 1e-3
    alone = [engine.token_stats([r])[0] for r in reqs[:4]]
    assert all(np.abs(a.logprob - b.logprob).max() < 1e-5 for a, b in zip(alone, got))


def test_token_stats_over_sliding_windows_equal_the_naive_path():
    model = tiny_model(V, seed=2)
    rng = np.random.default_rng(1)
    reqs = [Request(rng.integers(0, V, n).tolist()) for n in (5, 40, 90, 33)]
    engine = Engine(model, EngineSettings(context=32, stride=16, token_budget=256, progress=False))
    naive = NaiveScorer(model, 32, 16, progress=False)
    got, want = engine.token_stats(reqs), naive.token_stats(reqs)
    for a, b, r in zip(got, want, reqs):
        assert len(a.logprob) == r.count()
        assert max(np.abs(x - y).max() for x, y in zip((a.logprob, a.mean, a.std), (b.logprob, b.mean, b.std))) < 1e-4
    assert np.abs(np.array([s.logprob.sum() for s in got]) - engine.score(reqs)).max() < 1e-3


def test_tokens_run_counts_what_the_model_ran_after_prefix_reuse():
    model = tiny_model(V, seed=3)
    rng = np.random.default_rng(2)
    groups = [Group(rng.integers(0, V, 20).tolist(), [rng.integers(0, V, 6).tolist() for _ in range(5)])
              for _ in range(4)]
    engine = Engine(model, EngineSettings(context=128, stride=64, token_budget=512, progress=False))
    naive = NaiveScorer(model, 128, 64, progress=False)
    engine.score_groups(groups)
    naive.score_groups(groups)
    assert engine.tokens_scored == naive.tokens_scored == 4 * 5 * 6
    assert engine.tokens_run == sum(len(tree_row(g)) for g in groups)  # each prefix once
    assert naive.tokens_run == sum(20 + 6 - 1 for _ in range(4 * 5))  # every sequence whole, last token unfed
    reqs = [Request(rng.integers(0, V, 30).tolist()) for _ in range(3)]
    before = engine.tokens_run
    engine.token_stats(reqs)
    assert engine.tokens_run - before == 3 * 29


def stats_of(logprob, mean=None, std=None) -> TokenStats:
    lp = np.asarray(logprob, dtype=float)
    return TokenStats(lp, np.zeros_like(lp) if mean is None else np.asarray(mean, float),
                      np.ones_like(lp) if std is None else np.asarray(std, float))


def test_item_scores_follow_the_papers_and_point_up_for_members():
    lp = -np.arange(1.0, 11.0)  # token NLLs 1..10
    s = stats_of(lp, mean=np.full(10, -5.0), std=np.full(10, 2.0))
    text = "Question: what?\nAnswer: A"
    assert get_detector("loss").item_score(s, text) == pytest.approx(-5.5)  # -mean NLL
    assert get_detector("zlib").item_score(s, text) == pytest.approx(-55.0 / len(zlib.compress(text.encode())))
    assert get_detector("min_k", {"k": 0.2}).item_score(s, text) == pytest.approx(-9.5)  # the 2 lowest: -10, -9
    assert get_detector("min_k_pp", {"k": 0.2}).item_score(s, text) == pytest.approx(((-10 + 5) / 2 + (-9 + 5) / 2) / 2)
    assert get_detector("min_k", {"k": 0.01}).item_score(s, text) == -10  # at least one token
    # a memorised item (higher log-probs) scores higher on every detector
    better = stats_of(lp + 2.0, mean=np.full(10, -5.0), std=np.full(10, 2.0))
    for name in MIA:
        det = get_detector(name)
        assert det.item_score(better, text) > det.item_score(s, text)
    with pytest.raises(SpikeinError, match="min_k.k"):
        get_detector("min_k", {"k": 0})


def test_membership_fields_calibrated_under_the_null_and_find_a_shift():
    rng = np.random.default_rng(0)
    null = [membership_fields(rng.normal(size=20), rng.normal(size=60)) for _ in range(300)]
    assert_uniform([r["p"] for r in null])
    assert abs(np.mean([r["auroc"] for r in null]) - 0.5) < 0.02
    member = membership_fields(rng.normal(size=20) + 2.5, rng.normal(size=60))
    assert member["auroc"] > 0.8 and member["statistic"] == member["auroc"] and member["log10_p"] < -4
    assert member["tpr_at_5fpr"] > 0.3
    lower = membership_fields(rng.normal(size=20) - 1.5, rng.normal(size=60))  # non-member-like: not flagged
    assert lower["auroc"] < 0.2 and lower["p"] > 0.5
    assert membership_fields(rng.normal(size=5), np.zeros(0))["p"] is None


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    pool = make_items(100 * 8, seed=100, prefix="n")
    hot = make_items(20, seed=21, prefix="h")
    d = tmp_path_factory.mktemp("tok")
    make_tokenizer(d, pool[:200] + hot)
    return load_tokenizer(str(d)), pool, hot


def context(tok, model, bos=None) -> AuditContext:
    engine = Engine(model, EngineSettings(context=256, stride=128, token_budget=8192, progress=False))
    return AuditContext(engine, tok, "mcq", encode_text(tok, "\n\n"), bos)


def test_one_forward_pass_serves_all_four_detectors(world):
    tok, pool, _ = world
    model = tiny_model(len(tok), seed=1)
    ctx = context(tok, model, bos=1)
    part = PartitionData("b", "p", 0, pool[:12])
    passes = []
    model.register_forward_hook(lambda m, a, o: passes.append(1))
    raws = {name: get_detector(name).score(ctx, part) for name in MIA}
    assert len(passes) == 1 and ctx.scorer.tokens_run == sum(len(s) - 1 for s in item_sequences(ctx, part))
    assert item_sequences(ctx, part)[0] == [1] + encode_text(tok, render_mcq(part.items[0]))  # BOS once
    assert all(raw["n_tokens"] == raws["loss"]["n_tokens"] for raw in raws.values())
    ctx2 = context(tok, model, bos=1)  # another scorer (checkpoint): computed again
    get_detector("loss").score(ctx2, part)
    assert len(passes) == 2


def test_null_p_values_uniform_on_a_random_init_model(world):
    tok, pool, _ = world
    ctx = context(tok, tiny_model(len(tok), seed=5))
    parts = [PartitionData("b", f"r{i}", 0, pool[i * 8 : (i + 1) * 8]) for i in range(100)]
    for name in MIA:
        det = get_detector(name)
        raws = [det.score(ctx, p) for p in parts]
        # each partition, as if injected, against one independent control
        paired = [det.summarize([PartitionData("b", "x", 1, parts[i].items), parts[i + 1]], raws[i : i + 2])[0]
                  for i in range(0, 100, 2)]
        assert all(r["calibrated"] for r in paired)
        assert_uniform([r["p"] for r in paired], fpr=False)
        rows = det.summarize(parts[:3], raws[:3])  # controls against the other controls
        assert all(r["null"] == "controls" and r["p"] is not None for r in rows)
        assert det.summarize(parts[:1], raws[:1])[0]["p"] is None  # a lone control: nothing to compare


@pytest.mark.slow
def test_trained_partition_is_flagged_by_every_detector(world):
    tok, pool, hot = world
    model = train_on(tiny_model(len(tok), seed=0), (copy_tokens(tok, hot, "mcq") + [tok.eos_token_id]) * 3,
                     steps=150, lr=5e-3)
    ctx = context(tok, model)
    parts = [PartitionData("b", "hot", 8, hot)] + [PartitionData("b", f"c{i}", 0, pool[i * 20 : (i + 1) * 20])
                                                   for i in range(3)]
    for name in MIA:
        det = get_detector(name)
        rows = det.summarize(parts, [det.score(ctx, p) for p in parts])
        assert rows[0]["auroc"] > 0.9 and rows[0]["log10_p"] < -5, (name, rows[0])
        assert rows[0]["mean_score"] > rows[0]["control_mean_score"]
        assert all(r["p"] > 0.001 for r in rows[1:]), name
