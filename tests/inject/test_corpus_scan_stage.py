"""`spikein inject` scans its stream: planted controls are found and named; exclude_found drops them."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from inject.manifest import load_manifest, load_partition
from inject.render import render_mcq
from inject.stage import plan_benchmarks, run_inject
from tests.inject_fixtures import inject_config, write_corpus

PLAIN = ("inject.option_order=canonical",)  # the rendering planted is the one injected


def plant(tmp: Path, verbatim, quoted) -> Path:
    """The fixture corpus plus one document holding ``verbatim``'s rendering as a paragraph and
    another quoting ``quoted``'s question (no options) mid-paragraph, in other case."""
    corpus = write_corpus(tmp / "corpus", 120)
    (corpus / "doc9000.txt").write_text(f"river stone garden window.\n\n{render_mcq(verbatim)}\n\nsilver market winter.")
    (corpus / "doc9001.txt").write_text(f"meadow copper forest, and then someone asked {quoted.question.lower()} "
                                        "before the candle engine valley went quiet.")
    return corpus


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("planted")
    [(_, parts)] = plan_benchmarks(inject_config(tmp / "plan", *PLAIN))
    control = next(p for p in parts if p.count == 0)
    a, b = control.items[0], control.items[1]
    corpus = plant(tmp, a, b)
    return tmp, corpus, a, b


def inject(tmp: Path, corpus: Path, name: str, *extra: str) -> Path:
    cfg = inject_config(tmp / name, *PLAIN, f"data.paths=[{corpus}]", *extra)
    run_inject(cfg)  # verifies the stream too: the planted rendering counts as corpus, not as a copy
    return Path(cfg.run_dir)


def test_planted_controls_are_found_and_named(planted, capsys):
    tmp, corpus, a, b = planted
    run = inject(tmp, corpus, "default")
    assert "CONTROLS FOUND: toy/x0 2" in capsys.readouterr().out
    scan = json.loads((run / "data" / "corpus_scan.json").read_text())
    x0 = scan["benchmarks"]["toy"]["x0"]
    assert x0["count"] == 0 and x0["ids"] == sorted([a.id, b.id])
    assert set(x0["items"][a.id]) == {"rendering", "question"} and x0["items"][a.id]["rendering"]["count"] == 1
    assert set(x0["items"][b.id]) == {"question"} and x0["items"][b.id]["question"]["count"] == 1
    assert all(not v["ids"] for p, v in scan["benchmarks"]["toy"].items() if p != "x0")  # no false finds
    stream = load_manifest(run)
    offset = x0["items"][a.id]["rendering"]["offsets"][0]
    assert not any(c.start <= offset < c.end for c in stream.copies)  # corpus text, not an injected copy


def test_exclude_found_drops_them_before_partitioning(planted, capsys):
    tmp, corpus, a, b = planted
    run = inject(tmp, corpus, "excluded", "inject.exclude_found=true")
    err = capsys.readouterr().err
    assert f"inject: exclude_found: dropped 2 of 60 toy items found in the corpus: " in err
    m = load_manifest(run)
    assert sorted(m.benchmark("toy").excluded_found) == sorted([a.id, b.id])
    ids = {it.id for p in m.partitions for it in load_partition(run, p)}
    assert a.id not in ids and b.id not in ids and len(ids) == 24
    scan = json.loads((run / "data" / "corpus_scan.json").read_text())
    assert all(not v["ids"] for v in scan["benchmarks"]["toy"].values())
    assert sorted(scan["excluded"]["toy"]) == sorted([a.id, b.id])
