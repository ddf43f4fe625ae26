import numpy as np
import pytest

from inject.corpus import split_document
from inject.errors import SpikeinError
from inject.items import Item
from inject.plan import PlannedCopy, PlanSettings, make_partitions, partition_names, place_copies
from inject.render import join_token_lists, render_cloze, render_mcq, render_mcq_noanswer, render_raw
from inject.stream import stream_dtype

ITEM = Item("i1", "What is 2+2?", ("3", "4", "5"), 1, record={"q": "What is 2+2?"})


def settings(**kw):
    base = dict(counts=[0, 1, 4], partition_size=5, partition_fraction=None, mode="document",
                renderer="mcq", window=[0.0, 1.0], seed=7)
    base.update(kw)
    return PlanSettings.from_config(base)


def test_renderers():
    assert render_mcq(ITEM) == "Question: What is 2+2?\nA. 3\nB. 4\nC. 5\nAnswer: B"
    assert render_mcq_noanswer(ITEM) == "Question: What is 2+2?\nA. 3\nB. 4\nC. 5"
    assert render_cloze(ITEM) == "Question: What is 2+2?\nAnswer: 4"
    assert render_raw(ITEM) == '{"q": "What is 2+2?"}'


def test_join_puts_bos_once_and_separators_between():
    assert join_token_lists([[1, 2], [3], [4, 5]], [9], bos_id=0) == [0, 1, 2, 9, 3, 9, 4, 5]
    assert join_token_lists([[1]], [9, 9], bos_id=None) == [1]


def test_partitions_disjoint_seeded_canonical():
    items = [Item(f"q{i}", f"question {i}", ("a", "b"), 0) for i in range(20)]
    parts = make_partitions("b", items, settings())
    ids = [it.id for p in parts for it in p.items]
    assert len(ids) == len(set(ids)) == 15
    for p in parts:
        idx = [int(it.id[1:]) for it in p.items]
        assert idx == sorted(idx)
    again = make_partitions("b", items, settings())
    assert [p.items for p in parts] == [p.items for p in again]
    other = make_partitions("b", items, settings(seed=8))
    assert [p.items for p in parts] != [p.items for p in other]


def test_partition_size_fraction_and_limits():
    items = [Item(f"q{i}", "q", ("a", "b"), 0) for i in range(10)]
    parts = make_partitions("b", items, settings(partition_size=None, partition_fraction=0.3))
    assert [len(p.items) for p in parts] == [3, 3, 3]
    with pytest.raises(SpikeinError, match="need 12 items but it has 10"):
        make_partitions("b", items, settings(partition_size=4))


def test_partition_names_disambiguate_repeated_counts():
    assert partition_names([0, 1, 0, 4, 0]) == ["x0", "x1", "x0_1", "x4", "x0_2"]


def test_place_copies_hits_targets_in_final_coordinates():
    lengths = np.full(1000, 10)
    copies = [PlannedCopy("b", "p", k, None, tuple(range(49)), t) for k, t in enumerate([0.0, 0.5, 0.5, 0.99])]
    slots = place_copies(copies, lengths, eos_wrap=1)
    total = 10_000 + 4 * 50
    pos, where = 0, {}
    for k, slot in enumerate(slots):
        for c in slot:
            where[c.copy] = pos
            pos += 50
        pos += 10 if k < 1000 else 0
    assert pos == total
    for c in copies:
        assert abs(where[c.copy] - c.target * total) <= 10 + 50  # one document, one copy


def test_split_document_respects_limit_and_keeps_text():
    text = "\n\n".join("word " * n for n in (5, 50, 3, 200))
    pieces = list(split_document(text, 120))
    assert all(len(p) <= 120 for p in pieces)
    assert "".join(pieces).replace("\n", "").replace(" ", "") == text.replace("\n", "").replace(" ", "")


def test_stream_dtype():
    assert stream_dtype(50_000) == "uint16"
    assert stream_dtype(65_536) == "uint16"
    assert stream_dtype(151_000) == "uint32"
    with pytest.raises(SpikeinError, match="uint16 cannot hold"):
        stream_dtype(151_000, "uint16")
