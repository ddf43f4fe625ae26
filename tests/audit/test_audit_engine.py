"""The scoring engine: windows, batch invariance, prefix reuse, order, data parallelism."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from audit_fixtures import dp_requests, one_thread, tiny_model  # noqa: E402,F401
from torchrun import torchrun  # noqa: E402

from audit.engine import Engine, EngineSettings, pack
from audit.naive import NaiveScorer
from audit.requests import Group, Request
from audit.windows import windows
from core.errors import SpikeinError

pytestmark = pytest.mark.usefixtures("one_thread")

V = 97


@pytest.fixture(scope="module")
def model():
    return tiny_model(V, seed=1)


def random_requests(n: int, seed: int, lo: int = 2, hi: int = 90) -> list[Request]:
    rng = np.random.default_rng(seed)
    return [Request(rng.integers(0, V, int(rng.integers(lo, hi))).tolist()) for _ in range(n)]


def direct_logprob(model, tokens: list[int], context: int, stride: int) -> float:
    """Each target scored on its own: log p(t_u | the tokens of the window that counts it)."""
    total = 0.0
    for u in range(1, len(tokens)):
        j = 0 if u <= context else -(-(u - context) // stride)
        start = stride * j
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([tokens[start:u]])).logits[0, -1]
        total += torch.log_softmax(logits.double(), -1)[tokens[u]].item()
    return total


@pytest.mark.parametrize("n,c,s", [(2, 4, 2), (10, 4, 2), (11, 4, 3), (40, 16, 16), (40, 16, 5), (7, 64, 32)])
def test_windows_count_every_target_once_with_enough_context(n, c, s):
    counted = []
    for w in windows(n, c, s):
        assert w.end - w.start <= c
        assert w.first_scored - 1 - w.start >= (c - s if w.start else 0)  # left context before a counted target
        counted += range(w.first_scored, w.last_scored)
    assert counted == list(range(1, n))


def test_windows_respect_span():
    ws = windows(40, 16, 8, span=(20, 30))
    counted = [u for w in ws for u in range(w.first_scored, w.last_scored)]
    assert counted == list(range(20, 30))


def test_bad_context_is_an_error(model):
    with pytest.raises(SpikeinError, match="stride"):
        Engine(model, EngineSettings(context=16, stride=32))


def test_sliding_windows_equal_direct_computation(model):
    tokens = np.random.default_rng(5).integers(0, V, 45).tolist()
    for context, stride in [(64, 32), (16, 8), (12, 5)]:
        engine = Engine(model, EngineSettings(context=context, stride=stride, token_budget=64, progress=False))
        got = engine.score([Request(tokens)])[0]
        assert got == pytest.approx(direct_logprob(model, tokens, context, stride), abs=1e-4)


def test_batch_invariance_and_order_restoration(model):
    reqs = random_requests(24, seed=2)
    engine = Engine(model, EngineSettings(context=48, stride=24, token_budget=300, progress=False))
    together = engine.score(reqs)
    alone = np.array([engine.score([r])[0] for r in reqs])
    assert np.abs(together - alone).max() < 1e-4
    perm = np.random.default_rng(0).permutation(len(reqs))
    shuffled = engine.score([reqs[i] for i in perm])
    assert np.abs(shuffled - together[perm]).max() < 1e-4
    # other neighbours, other batch shapes: same scores
    mixed = engine.score(reqs[:5] + random_requests(9, seed=3, lo=60, hi=120))[:5]
    assert np.abs(mixed - together[:5]).max() < 1e-4


def test_engine_matches_naive_and_counts_tokens(model):
    reqs = random_requests(12, seed=4) + [Request(list(range(30)), span=(10, 20))]
    engine = Engine(model, EngineSettings(context=32, stride=16, token_budget=200, progress=False))
    naive = NaiveScorer(model, 32, 16, progress=False)
    assert np.abs(engine.score(reqs) - naive.score(reqs)).max() < 1e-4
    assert engine.tokens_scored == naive.tokens_scored == sum(len(r.tokens) - 1 for r in reqs[:-1]) + 10


def test_prefix_reuse_equals_full_sequence_scoring(model):
    rng = np.random.default_rng(6)
    groups = [
        Group(rng.integers(0, V, int(rng.integers(1, 25))).tolist(),
              [rng.integers(0, V, int(rng.integers(1, 15))).tolist() for _ in range(int(rng.integers(1, 9)))])
        for _ in range(15)
    ]
    groups.append(Group(list(range(50)), [[1, 2, 3], [4]]))  # longer than the context: windows, no reuse
    full = NaiveScorer(model, 48, 24, progress=False).score_groups(groups)
    for budget in (40, 4096):  # tiny budget: groups split over batches
        engine = Engine(model, EngineSettings(context=48, stride=24, token_budget=budget, progress=False))
        reused = engine.score_groups(groups)
        for a, b in zip(reused, full):
            assert a.shape == b.shape and np.abs(a - b).max() < 1e-4


def test_pack_respects_budget():
    widths = [50, 40, 40, 30, 10, 10, 10]
    batches = pack([1] * len(widths), widths, 100)
    assert [i for b in batches for i in b] == list(range(len(widths)))
    assert all(len(b) * max(widths[i] for i in b) <= 100 or len(b) == 1 for b in batches)


def test_bf16_scores_close_to_fp32(model):
    reqs = random_requests(6, seed=8)
    fp32 = Engine(model, EngineSettings(context=64, stride=32, progress=False)).score(reqs)
    bf16_model = tiny_model(V, seed=1).to(torch.bfloat16)
    bf16 = Engine(bf16_model, EngineSettings(context=64, stride=32, progress=False)).score(reqs)
    per_token = np.abs(bf16 - fp32) / np.array([len(r.tokens) - 1 for r in reqs])
    assert per_token.max() < 0.05


@pytest.mark.slow
def test_data_parallel_gathers_in_order(tmp_path):
    out = tmp_path / "dp.json"
    torchrun(["-m", "audit_fixtures", str(out)], tmp_path / "logs", env={"PYTHONPATH": str(Path(__file__).parents[1])},
             timeout=120)
    got = json.loads(out.read_text())
    reqs, groups = dp_requests(97)
    engine = Engine(tiny_model(97, seed=3), EngineSettings(context=32, stride=16, token_budget=256, progress=False))
    assert got["world"] == 2
    assert np.abs(np.array(got["scores"]) - engine.score(reqs)).max() < 1e-4
    for a, b in zip(got["groups"], engine.score_groups(groups)):
        assert np.abs(np.array(a) - b).max() < 1e-4
    assert got["tokens"] == engine.tokens_scored


def test_mixed_and_amp_keep_fp32_logits_and_land_closer_to_fp32_than_bf16(tmp_path):
    """audit.precision=mixed: bf16 body, fp32 final norm and (untied copy of the) head; amp:
    fp32 weights and residual stream, bf16 matmuls, fp32 head. Both sit closer to fp32's
    log-probs than plain bf16 (amp by far: its rounding never accumulates in the stream)."""
    from audit.model import load_model

    big = tiny_model(V, seed=2)
    with torch.no_grad():  # logits of magnitude ~20, where a bf16 step is 0.125
        big.lm_head.weight.mul_(40.0)
    big.save_pretrained(tmp_path)
    reqs = random_requests(8, seed=9)
    scores = {}
    for precision in ("fp32", "bf16", "mixed", "amp"):
        model = load_model(str(tmp_path), precision, "cpu")
        scores[precision] = Engine(model, EngineSettings(context=64, stride=32, progress=False)).score(reqs)
        if precision == "mixed":
            assert model.lm_head.weight.dtype == torch.float32 and model.model.embed_tokens.weight.dtype == torch.bfloat16
            assert model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr()
            assert model(input_ids=torch.tensor([[1, 2, 3]])).logits.dtype == torch.float32
        if precision == "amp":
            assert model(input_ids=torch.tensor([[1, 2, 3]])).logits.dtype == torch.float32
    err = {p: np.abs(scores[p] - scores["fp32"]).max() for p in ("bf16", "mixed", "amp")}
    assert err["amp"] < err["mixed"] / 10 < err["bf16"] / 20, err
