"""The prefix tree the engine runs: every sequence is its path, shared prefixes are one node."""
from __future__ import annotations

import random

import numpy as np
import pytest
from audit_fixtures import one_thread, tiny_model  # noqa: E402,F401

from audit.engine import Engine, EngineSettings
from audit.naive import NaiveScorer
from audit.prefix_tree import build_tree
from audit.requests import Group, Request

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("min_len", [0, 2, 4])
def test_paths_rebuild_every_sequence(min_len):
    rnd = random.Random(min_len)
    for _ in range(500):
        seqs = [[rnd.randint(0, 2) for _ in range(rnd.randint(1, 7))] for _ in range(rnd.randint(1, 9))]
        tree = build_tree(seqs).merge_short(min_len)
        kids = tree.children()
        for i, s in enumerate(seqs):
            path = tree.path(i)[::-1]
            assert [t for n in path for t in tree.tokens[n]] == s
            assert [tree.start[n] for n in path] == list(np.cumsum([0] + [len(tree.tokens[n]) for n in path[:-1]]))
        for siblings in [tree.top()] + kids:  # siblings part at their first token
            firsts = [tree.tokens[n][0] for n in siblings]
            assert len(firsts) == len(set(firsts)) or min_len > 1


def test_shared_prefixes_and_repeats_become_one_node():
    seqs = [[1, 2, 3, 4], [1, 2, 3, 5], [1, 2, 3, 4], [1, 2], [7]]
    tree = build_tree(seqs)
    assert sum(map(len, tree.tokens)) == len([1, 2, 3, 4, 5, 7])
    assert tree.terminal[0] == tree.terminal[2]
    assert tree.tokens[tree.terminal[3]] == [1, 2]


def test_engine_runs_shared_prefixes_once():
    model = tiny_model(97, seed=2)
    fed = {"tokens": 0}
    model.model.embed_tokens.register_forward_pre_hook(lambda m, a: fed.__setitem__("tokens", fed["tokens"] + a[0].numel()))
    rng = np.random.default_rng(0)
    groups = [Group(rng.integers(0, 97, 40).tolist(), [rng.integers(0, 97, 6).tolist() for _ in range(24)])
              for _ in range(5)]
    naive = NaiveScorer(model, 256, 128, progress=False)
    expected = naive.score_groups(groups)
    full = fed["tokens"]
    fed["tokens"] = 0
    engine = Engine(model, EngineSettings(context=256, stride=128, progress=False, min_node=1, min_fill=0.0))
    got = engine.score_groups(groups)
    assert fed["tokens"] < full / 4  # each 40-token prefix once instead of 24 times
    assert max(np.abs(a - b).max() for a, b in zip(got, expected)) < 1e-4
    fed["tokens"] = 0
    repeats = [Request(list(range(1, 30)))] * 10
    assert np.ptp(engine.score(repeats)) < 1e-9 and fed["tokens"] == 29  # repeats scored once


@pytest.mark.parametrize("min_node,min_fill,min_tokens", [(1, 0.0, 0), (16, 0.75, 256), (1000, 1.0, 0)])
def test_bucketing_choices_do_not_change_scores(min_node, min_fill, min_tokens):
    model = tiny_model(97, seed=4)
    rng = np.random.default_rng(1)
    base = [rng.integers(0, 97, int(rng.integers(2, 30))).tolist() for _ in range(6)]
    reqs = [Request(b + rng.integers(0, 97, int(rng.integers(1, 25))).tolist(), span=(1 + k % 3, 60))
            for k, b in enumerate(base * 4)]
    expected = NaiveScorer(model, 64, 32, progress=False).score(reqs)
    settings = EngineSettings(context=64, stride=32, token_budget=256, progress=False,
                              min_node=min_node, min_fill=min_fill, min_tokens=min_tokens)
    assert np.abs(Engine(model, settings).score(reqs) - expected).max() < 1e-4
