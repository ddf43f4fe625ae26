import numpy as np
import pytest

from core.errors import SpikeinError
from inject.items import Item, permute_choices
from inject.plan import PlannedCopy, PlanSettings, epoch_tokens, make_partitions, partition_names, place_copies
from inject.render import join_token_lists, render_cloze, render_mcq, render_mcq_noanswer, render_raw
from inject.stream import stream_dtype
from sources.text import split_document

ITEM = Item("i1", "What is 2+2?", ("3", "4", "5"), 1, record={"q": "What is 2+2?"})


def settings(**kw):
    base = dict(counts=[0, 1, 4], partition_size=5, partition_fraction=None, mode="document",
                renderer="mcq", window=[0.0, 1.0], seed=7, item_order="shuffled", option_order="canonical")
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


def test_partitions_disjoint_and_seeded():
    items = [Item(f"q{i}", f"question {i}", ("a", "b"), 0) for i in range(20)]
    parts = make_partitions("b", items, settings())
    ids = [it.id for p in parts for it in p.items]
    assert len(ids) == len(set(ids)) == 15
    for p in parts:  # each item knows its line in the benchmark file
        assert [items[i] for i in p.indices] == list(p.items)
    again = make_partitions("b", items, settings())
    assert [p.items for p in parts] == [p.items for p in again]
    other = make_partitions("b", items, settings(seed=8))
    assert [p.items for p in parts] != [p.items for p in other]


def test_canonical_item_order_keeps_the_file_order():
    items = [Item(f"q{i}", f"question {i}", ("a", "b"), 0) for i in range(60)]
    for p in make_partitions("b", items, settings(item_order="canonical", partition_size=20)):
        assert list(p.indices) == sorted(p.indices)


def test_shuffled_item_order_permutes_every_partition_controls_too():
    items = [Item(f"q{i}", f"question {i}", ("a", "b"), 0) for i in range(60)]
    canonical = make_partitions("b", items, settings(item_order="canonical", partition_size=20))
    shuffled = make_partitions("b", items, settings(partition_size=20))  # the default
    assert [p.count for p in shuffled] == [0, 1, 4]
    ranks = []
    for c, s in zip(canonical, shuffled):
        assert sorted(s.indices) == list(c.indices)  # the same items, only reordered
        assert list(s.indices) != list(c.indices)  # the control (count 0) included
        ranks.append(tuple(np.argsort(np.argsort(s.indices))))
    assert len(set(ranks)) == 3  # a different permutation in each partition
    assert make_partitions("b", items, settings(partition_size=20)) == shuffled
    assert make_partitions("b", items, settings(partition_size=20, seed=8)) != shuffled


def test_shuffled_options_remap_the_answer_to_the_same_text():
    items = [Item(f"q{i}", f"question {i}", tuple(f"choice {i}-{k}" for k in range(5)), i % 5) for i in range(30)]
    parts = make_partitions("b", items, settings(option_order="shuffled"))
    moved = 0
    for p in parts:
        for it, i, order, row in zip(p.items, p.indices, p.option_orders, p.rows()):
            original = items[i]
            assert it.choices == tuple(original.choices[k] for k in order)
            assert it.choices[it.answer] == original.choices[original.answer]
            letter = render_mcq(it)[-1]  # "Answer: <letter>" points at the correct text
            assert f"\n{letter}. {original.choices[original.answer]}\n" in render_mcq(it)
            assert row["option_order"] == list(order) and row["original_answer"] == original.answer
            assert row["index"] == i and row["answer"] == it.answer and row["choices"] == list(it.choices)
            moved += it.answer != original.answer
    assert moved > 10  # seeded per item: answers really move
    assert parts == make_partitions("b", items, settings(option_order="shuffled"))
    assert all(p.option_orders is None for p in make_partitions("b", items, settings()))


def test_bad_orders_are_refused():
    with pytest.raises(SpikeinError, match="inject.item_order=random: choose one of: shuffled, canonical"):
        settings(item_order="random")
    with pytest.raises(SpikeinError, match="inject.option_order=shuffled needs a renderer"):
        settings(option_order="shuffled", renderer="raw")


def test_permute_choices_rejects_a_non_permutation():
    with pytest.raises(SpikeinError, match="not an order"):
        permute_choices(ITEM, [0, 0, 1])
    assert permute_choices(ITEM, [2, 0, 1]) == Item("i1", "What is 2+2?", ("5", "3", "4"), 2)


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


def test_copies_end_inside_the_whole_batches_of_one_epoch():
    lengths = np.full(1000, 10)
    copies = [PlannedCopy("b", "p", k, None, tuple(range(49)), t) for k, t in enumerate(np.linspace(0.9, 1.0, 8))]
    total = 10_000 + 8 * 50
    per_step = 3000  # the last 1400 tokens are a partial batch training drops
    slots = place_copies(copies, lengths, eos_wrap=1, tokens_per_step=per_step)
    ends = _copy_ends(slots, lengths, 50)
    assert epoch_tokens(total, per_step) == 9000
    assert max(ends) <= 9000 and len(ends) == 8
    assert min(ends) >= 0.9 * 9000 - 10  # the window is a fraction of the consumed tokens
    without = place_copies(copies, lengths, eos_wrap=1)
    assert max(_copy_ends(without, lengths, 50)) > 9000  # the old placement reached into the tail


def test_copies_aimed_at_the_very_end_stack_before_the_dropped_batch():
    lengths = np.full(10, 10)
    copies = [PlannedCopy("b", "p", k, None, tuple(range(49)), 0.99) for k in range(3)]
    ends = _copy_ends(place_copies(copies, lengths, eos_wrap=1, tokens_per_step=200), lengths, 50)
    assert epoch_tokens(250, 200) == 200 and max(ends) <= 200 and len(ends) == 3


def _copy_ends(slots, lengths, size):
    pos, ends = 0, []
    for k, slot in enumerate(slots):
        for _ in slot:
            pos += size
            ends.append(pos)
        pos += int(lengths[k]) if k < len(lengths) else 0
    return ends


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
