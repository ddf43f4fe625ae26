"""Duplicates in a benchmark file: merged at load, named in one line, never in two partitions."""
from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from core.config import with_values
from core.errors import SpikeinError
from inject.duplicates import item_key
from inject.items import Item
from inject.verify import _check_item_counts
from tests.inject_fixtures import inject_config, write_benchmark


def write_twice(path, n_items: int = 60):
    """The issue's file (a COPA-style JSONL without ids): every item appears twice, the second
    time with its choices in another order and extra whitespace; ids are line numbers."""
    rows = [json.loads(line) for line in write_benchmark(path, n_items).read_text().splitlines()]
    twins = [{**r, "q": "  " + r["q"].replace(" ", "  "), "opts": r["opts"][::-1],
              "gold": len(r["opts"]) - 1 - r["gold"]} for r in rows]
    path.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "qid"}) + "\n" for r in rows + twins))
    return path


@pytest.fixture(scope="module")
def twice_cfg(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("twice")
    bench = write_twice(tmp / "copa.jsonl")
    cfg = inject_config(tmp, f"+benchmarks.copa={{source:generic,path:'{bench}',fields:{{question:q,choices:opts,answer:gold}}}}")
    del cfg.benchmarks["toy"]  # the fixture's own benchmark
    return cfg


def test_duplicates_are_named_in_one_line_at_load(twice_cfg, capsys):
    from inject.benchmarks import load_benchmark

    items = load_benchmark("copa", twice_cfg.benchmarks["copa"])
    assert [it.id for it in items] == [str(i) for i in range(60)]  # the first of each pair, file order
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("benchmark copa: merged 60 exact duplicate item(s) of 120 (same question and "
                               "choices; first kept): 60 = 0, 61 = 1, 62 = 2, ")
    assert "(54 more, all listed in data/manifest.json)" in lines[0]


def test_with_defaults_every_distinct_item_is_planned_once_for_any_seed(twice_cfg):
    """The reported defect: a twin in a control and an injected partition ('control item copa/x0
    item 40 occurs 4 times in the stream, expected 0'). Checked over many seeds at the plan level."""
    from inject.stage import plan_with_notes

    for seed in range(40):
        seeded = with_values(twice_cfg, {"seed": seed, "inject.seed": seed})  # what ${seed} reaches when planning
        [(_, parts, notes)] = plan_with_notes(seeded)
        keys = Counter(item_key(it) for p in parts for it in p.items)
        assert max(keys.values()) == 1, seed  # no item twice, in one partition or two
        assert sum(len(p.items) for p in parts) == 24 and len(notes["duplicates"]["merged"]) == 60


def test_near_duplicates_are_kept_and_warned(capsys):
    from inject.duplicates import merge_duplicates

    a = Item("a", "Which is  heavier?", ("lead", "air"), 0)
    b = Item("b", "Which is heavier?", ("iron", "foam"), 0)  # same question, other choices
    c = Item("c", "Which is heavier?", ("air", "lead "), 1)  # a's choices in another order: a duplicate
    kept, dups = merge_duplicates("w", [a, b, c])
    assert [it.id for it in kept] == ["a", "b"] and dups.merged == {"a": ["c"]} and dups.near == [["a", "b"]]
    err = capsys.readouterr().err
    assert "merged 1 exact duplicate item(s) of 3" in err and "c = a" in err
    assert "warning: 1 question(s) occur with other choices (near-duplicates, kept): a ~ b" in err
    other_context = Item("d", "Which is heavier?", ("lead", "air"), 0, context="On the moon:")
    assert len(merge_duplicates("w", [a, other_context])[0]) == 2  # the context is part of the question


def test_verify_names_the_twin_when_an_item_occurs_too_often():
    """Keep the exact-occurrence check; its message names the cause where it can."""
    stream = np.array([9, 1, 2, 3, 9, 1, 2, 3, 9, 1, 2, 3, 9, 1, 2, 3, 9, 5, 6, 9], dtype=np.uint16)
    patterns = [("copa/x0 item 40", [1, 2, 3], 0, 0), ("copa/x4 item 12", [1, 2, 3], 4, 0)]
    with pytest.raises(SpikeinError, match=r"^control item copa/x0 item 40 occurs 4 times in the stream, expected 0: "
                                           r"it renders exactly as copa/x4 item 12 \(injected 4 times\), the same item "
                                           r"twice in the benchmark file"):
        _check_item_counts(stream, patterns)
    _check_item_counts(stream, [("b/x0 item 7", [5, 6], 0, 1)])  # once in the corpus text, as the scan found
    with pytest.raises(SpikeinError, match="found it nowhere in the corpus text"):
        _check_item_counts(stream, [("b/x0 item 7", [5, 6], 0, 0)])
