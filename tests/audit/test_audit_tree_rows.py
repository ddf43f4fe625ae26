"""Groups scored as one tree row each: the same numbers as scoring every sequence alone."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from audit_fixtures import one_thread, tiny_model  # noqa: E402,F401

from audit.engine import Engine, EngineSettings, pack
from audit.naive import NaiveScorer
from audit.requests import Group
from audit.tree_rows import batch_inputs, tree_row

pytestmark = pytest.mark.usefixtures("one_thread")

V = 61


def shuffle_groups(n: int, seed: int, k: int = 4) -> list[Group]:
    """Option-shuffle-like groups: shared pieces, a repeated continuation, one that is a prefix of another."""
    rng = np.random.default_rng(seed)
    groups = []
    for _ in range(n):
        prefix = rng.integers(0, V, int(rng.integers(1, 25))).tolist()
        pieces = [rng.integers(0, V, int(rng.integers(1, 8))).tolist() for _ in range(k)]
        conts = [sum((pieces[i] for i in rng.permutation(k)), []) for _ in range(int(rng.integers(1, 9)))]
        conts += [conts[0], pieces[0], pieces[0] + pieces[1]]
        groups.append(Group(prefix, conts))
    return groups


def other_models():
    from transformers import GPT2Config, GPT2LMHeadModel, GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(0)
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=V, n_embd=32, n_layer=2, n_head=4, n_positions=256))
    neox = GPTNeoXForCausalLM(GPTNeoXConfig(vocab_size=V, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                            intermediate_size=64, max_position_embeddings=256))
    return {"gpt2": gpt2.eval(), "gpt_neox": neox.eval()}


@pytest.mark.parametrize("arch", ["llama", "gpt2", "gpt_neox"])
def test_tree_rows_equal_scoring_each_sequence_alone(arch):
    model = tiny_model(V, seed=2) if arch == "llama" else other_models()[arch]
    groups = shuffle_groups(9, seed=1)
    engine = Engine(model, EngineSettings(context=128, stride=64, token_budget=160, progress=False))
    assert all(engine._packable(g) for g in groups)
    passes = []
    model.register_forward_hook(lambda m, args, out: passes.append(1))
    got = engine.score_groups(groups)
    widths = sorted((len(tree_row(g)) for g in groups), reverse=True)
    batches = pack([1] * len(groups), widths, 160)
    assert 1 < len(batches) < len(groups)  # the budget splits the rows, and passes hold several
    assert len(passes) == len(batches)  # one pass per batch of rows: no per-sequence passes
    want = NaiveScorer(model, 128, 64, progress=False).score_groups(groups)
    for a, b in zip(got, want):
        assert a.shape == b.shape and np.abs(a - b).max() < 1e-4


def test_each_token_sees_exactly_its_own_sequence():
    group = shuffle_groups(1, seed=3)[0]
    row = tree_row(group)
    allowed = batch_inputs([row], torch.float32)["attention_mask"][0, 0] == 0
    for cont, path in zip(group.continuations, row.paths):
        assert row.tokens[path].tolist() == list(cont)
        assert row.positions[path].tolist() == list(range(len(group.prefix), len(group.prefix) + len(cont)))
        seen = np.flatnonzero(allowed[path[-1]].numpy())
        assert seen.tolist() == list(range(len(group.prefix))) + path.tolist()


def test_groups_that_do_not_fit_a_row_take_the_sequence_path():
    model = tiny_model(V, seed=2)
    rng = np.random.default_rng(4)
    long_conts = Group(rng.integers(0, V, 10).tolist(), [rng.integers(0, V, 50).tolist() for _ in range(3)])
    no_prefix = Group([], [rng.integers(0, V, 6).tolist() for _ in range(3)])
    fits = shuffle_groups(1, seed=5)[0]
    engine = Engine(model, EngineSettings(context=40, stride=20, token_budget=512, progress=False))
    assert [engine._packable(g) for g in (long_conts, no_prefix, fits)] == [False, False, True]
    got = engine.score_groups([long_conts, no_prefix, fits])
    want = NaiveScorer(model, 40, 20, progress=False).score_groups([long_conts, no_prefix, fits])
    for a, b in zip(got, want):
        assert np.abs(a - b).max() < 1e-4


def test_bf16_tree_rows_close_to_fp32():
    groups = shuffle_groups(4, seed=6)
    fp32 = NaiveScorer(tiny_model(V, seed=2), 128, 64, progress=False).score_groups(groups)
    engine = Engine(tiny_model(V, seed=2).to(torch.bfloat16), EngineSettings(context=128, stride=64, progress=False))
    for g, a, b in zip(groups, engine.score_groups(groups), fp32):
        per_token = np.abs(a - b) / np.array([len(c) for c in g.continuations])
        assert per_token.max() < 0.05
