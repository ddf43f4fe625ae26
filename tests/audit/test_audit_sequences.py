"""Audit sequences are the injected tokens: canonical order, option blocks, answers."""
from __future__ import annotations

import numpy as np
import pytest
from audit_fixtures import make_items, make_run_dir  # noqa: E402
from conftest import make_tokenizer  # noqa: E402

from audit.detectors import AuditContext, PartitionData, get_detector
from audit.sequences import answer_group, option_group, option_orders, ordering_sequences, rng_for, shard_slices
from inject.manifest import load_manifest, load_partition, load_run_tokenizer, open_stream
from inject.render import encode_items, encode_text, options_text, question_text, render_mcq


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tok")
    make_tokenizer(d, make_items(60, seed=11))
    return d


@pytest.mark.parametrize("renderer,bos", [("mcq", None), ("raw", 0), ("cloze", None)])
def test_canonical_sequence_is_the_injected_copy(tmp_path, tok_dir, renderer, bos):
    items = make_items(12, seed=3)
    run, _ = make_run_dir(tmp_path, tok_dir, {"p0": (2, items), "ctl": (0, make_items(5, seed=4))},
                          renderer=renderer, bos_id=bos)
    manifest = load_manifest(run)
    stream = open_stream(run, manifest)
    tok = load_run_tokenizer(run, manifest)
    part = next(p for p in manifest.partitions if p.name == "p0")
    data = PartitionData("bench", "p0", 2, load_partition(run, part))
    ordering = get_detector("ordering", {"shards": 1, "permutations": 3, "test": "permutation", "seed": 0})
    ctx = AuditContext(None, tok, manifest.benchmark("bench").renderer, manifest.separator_ids, manifest.bos_id)
    canonical, shuffled = ordering.sequences(ctx, data)
    copies = manifest.copies_of("bench", "p0")
    assert len(copies) == 2
    for c in copies:
        assert canonical[0] == stream[c.start : c.end].tolist()
    assert all(sorted(s) == sorted(canonical[0]) for s in shuffled[0])  # same tokens, other order


def test_shards_join_their_items_like_a_copy(tok_dir):
    from inject.tokenizer import load_tokenizer

    tok = load_tokenizer(str(tok_dir))
    items = make_items(10, seed=5)
    lists = encode_items(tok, items, "mcq")
    sep = encode_text(tok, "\n\n")
    canonical, shuffled = ordering_sequences(lists, 3, 4, np.random.default_rng(0), sep, 7)
    assert [s.stop - s.start for s in shard_slices(10, 3)] == [4, 3, 3]
    assert canonical[1] == [7] + lists[4] + sep + lists[5] + sep + lists[6]
    assert len(shuffled) == 3 and all(len(s) == 4 for s in shuffled)


def test_option_orders_all_or_seeded_sample():
    four = option_orders(4, 5, 24, rng_for(1, "b", "p"))
    assert len(four) == 24 == len(set(four)) and four[0] == (0, 1, 2, 3)
    seven = option_orders(7, 5, 24, rng_for(1, "b", "p"))
    assert len(seven) == 24 == len(set(seven)) and seven[0] == tuple(range(7))
    assert seven == option_orders(7, 5, 24, rng_for(1, "b", "p"))
    assert seven != option_orders(7, 5, 24, rng_for(2, "b", "p"))


def test_option_group_canonical_order_is_the_mcq_prefix(tok_dir):
    from inject.tokenizer import load_tokenizer

    tok = load_tokenizer(str(tok_dir))
    item = make_items(1, seed=9)[0]
    orders = option_orders(4, 5, 24, None)
    g = option_group(tok, item, orders, bos_id=None)
    injected = encode_text(tok, render_mcq(item))
    canonical = list(g.prefix) + list(g.continuations[0])
    assert injected[: len(canonical)] == canonical
    assert list(g.prefix) == encode_text(tok, question_text(item))
    swapped = [item.choices[i] for i in orders[5]]
    assert list(g.prefix) + list(g.continuations[5]) == encode_text(tok, question_text(item) + options_text(swapped))


def test_answer_group_letter_and_text(tok_dir):
    from dataclasses import replace

    from inject.tokenizer import load_tokenizer

    tok = load_tokenizer(str(tok_dir))
    item = make_items(1, seed=10)[0]
    g = answer_group(tok, item, "letter", bos_id=3)
    assert g.prefix[0] == 3
    for i in range(len(item.choices)):
        assert list(g.prefix[1:]) + list(g.continuations[i]) == encode_text(tok, render_mcq(replace(item, answer=i)))
    t = answer_group(tok, item, "text", bos_id=None)
    assert all(len(c) >= 1 for c in t.continuations)
    assert len({tuple(c) for c in t.continuations}) == len(set(item.choices))
