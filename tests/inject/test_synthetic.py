"""The built-in synthetic world: determinism, size, stated facts, clean benchmarks."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from scipy.stats import chisquare

from core.errors import SpikeinError
from inject.render import question_text, render_mcq
from inject.synthetic import SyntheticWorld

SMALL = dict(n_people=120, n_places=30, n_orgs=30, practice_questions=100)


@pytest.fixture(scope="module")
def world() -> SyntheticWorld:
    return SyntheticWorld()


@pytest.fixture(scope="module")
def docs(world) -> list[str]:
    return list(world.documents())


@pytest.fixture(scope="module")
def items(world) -> dict:
    return {name: world.benchmark(name) for name in world.benchmark_names()}


def _practice_docs(docs: list[str]) -> list[str]:
    return [d for d in docs if d.startswith("Question: ")]


def _fingerprint(world: SyntheticWorld) -> str:
    items = [it.to_json() for name in world.benchmark_names() for it in world.benchmark(name)]
    text = "\0".join(world.documents()) + json.dumps(items, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def test_same_seed_same_world_other_seed_differs(world, docs, items):
    again = SyntheticWorld()
    assert list(again.documents()) == docs
    for name, its in items.items():
        assert [i.to_json() for i in again.benchmark(name)] == [i.to_json() for i in its]
    other = SyntheticWorld(seed=1235, **SMALL)
    same_small = SyntheticWorld(seed=1234, **SMALL)
    assert _fingerprint(other) != _fingerprint(same_small)


def test_same_bytes_in_other_processes_with_other_hash_seeds():
    # catches any use of hash() or set iteration order, which vary with PYTHONHASHSEED
    code = ("import hashlib, json; from inject.synthetic import SyntheticWorld\n"
            f"w = SyntheticWorld(seed=7, **{SMALL!r})\n"
            "items = [it.to_json() for name in w.benchmark_names() for it in w.benchmark(name)]\n"
            "text = '\\0'.join(w.documents()) + json.dumps(items, sort_keys=True)\n"
            "print(hashlib.sha256(text.encode()).hexdigest())")
    root = Path(__file__).resolve().parents[2]
    outs = {subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": hash_seed}).stdout.strip()
            for hash_seed in ("1", "2")}
    assert outs == {_fingerprint(SyntheticWorld(seed=7, **SMALL))}


def test_corpus_size_and_shape(docs):
    size = sum(len(d.encode()) for d in docs)
    assert 3_000_000 <= size <= 6_000_000, size
    assert max(len(d) for d in docs) <= 8000  # the corpus reader's default max_doc_chars
    assert len(set(docs)) == len(docs)
    # the document kinds are interleaved, not in blocks
    first_practice = [i for i, d in enumerate(docs) if d.startswith("Question: ")]
    assert first_practice[0] < len(docs) // 10 and first_practice[-1] > len(docs) * 9 // 10


def test_benchmarks_are_well_formed(world, items):
    assert {"people", "places"} <= set(items)
    for name, its in items.items():
        assert len(its) >= 400, name
        assert [it.id for it in its] == [f"{name}-{i:04d}" for i in range(len(its))]
        entities = [it.record["entity"] for it in its]
        assert len(set(entities)) == len(entities), f"{name}: repeated entity"
        for it in its:
            assert it.problems() is None and it.subject == name and len(it.choices) == 4
            assert len(set(it.choices)) == 4, it
            rec = json.loads(json.dumps(it.record))  # JSON-serialisable
            assert rec["choices"][rec["answer"]] == it.choices[it.answer] == rec["answer_text"]
            values = set(world.values(rec["answer_type"]))
            assert set(it.choices) <= values, f"{it.id}: option of another type"


def test_answers_stated_in_the_entity_article(world, docs, items):
    articles = {d.split("\n", 1)[0]: d for d in docs if not d.startswith("Question: ")}
    for its in items.values():
        for it in its:
            rec = it.record
            article = articles[rec["entity"]]
            assert rec["answer_text"] in article, f"{it.id}: {rec['relation']} not stated"



def test_facts_are_repeated_across_documents(docs, items):
    prose = [d for d in docs if not d.startswith("Question: ")]
    for its in items.values():
        for it in its[:40]:
            n = sum(1 for d in prose if it.record["entity"] in d and it.record["answer_text"] in d)
            assert n >= 2, f"{it.id}: fact stated in only {n} document"


def test_answer_positions_uniform_and_options_unsorted(items):
    for name, its in items.items():
        counts = Counter(it.answer for it in its)
        assert chisquare([counts[k] for k in range(4)]).pvalue > 1e-3, (name, counts)
        sorted_share = sum(list(it.choices) == sorted(it.choices) for it in its) / len(its)
        assert sorted_share < 0.15, (name, sorted_share)  # 1/24 expected by chance


def test_no_benchmark_item_in_corpus(docs, items):
    question_lines = {line for d in _practice_docs(docs) for line in d.split("\n") if line.startswith("Question: ")}
    assert question_lines  # the practice sets exist
    corpus = "\n".join(docs)
    for its in items.values():
        for it in its:
            assert question_text(it).rstrip("\n") not in question_lines, it.id
        for it in its[:25]:  # the full check, on a sample (a substring search of the corpus)
            assert render_mcq(it) not in corpus and it.question not in corpus, it.id


def test_practice_sets_use_held_out_entities(world, docs, items):
    practice = world.practice_items()
    assert len(practice) == 2000
    rendered = {block for d in _practice_docs(docs) for block in d.split("\n\n")}
    assert {render_mcq(it) for it in practice} == rendered
    bench_entities = {it.record["entity"] for its in items.values() for it in its}
    practice_entities = {it.record["entity"] for it in practice}
    assert practice_entities and not practice_entities & bench_entities
    # same kinds of questions as the benchmarks
    assert {it.record["relation"] for it in practice} == {it.record["relation"] for its in items.values() for it in its}


def test_practice_count_does_not_change_benchmarks():
    a, b = SyntheticWorld(**SMALL), SyntheticWorld(**{**SMALL, "practice_questions": 0})
    assert [i.to_json() for i in a.benchmark("places")] == [i.to_json() for i in b.benchmark("places")]
    assert not any(d.startswith("Question: ") for d in b.documents())


def test_unknown_benchmark_and_bad_sizes():
    w = SyntheticWorld(**SMALL)
    with pytest.raises(SpikeinError, match="people, places"):
        w.benchmark("weather")
    with pytest.raises(SpikeinError, match="n_people"):
        SyntheticWorld(n_people=3)
    with pytest.raises(SpikeinError, match="n_orgs"):
        SyntheticWorld(n_people=40, n_orgs=50)


@pytest.mark.parametrize("seed", range(20))
def test_smallest_worlds_build(seed):
    w = SyntheticWorld(seed=seed, n_people=4, n_places=4, n_orgs=4, practice_questions=10)
    assert sum(1 for _ in w.documents()) > 10
    assert all(len(w.benchmark(n)) >= 1 for n in w.benchmark_names())
    assert len(w.practice_items()) == 10
