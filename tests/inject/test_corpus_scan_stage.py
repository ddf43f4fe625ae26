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
    assert "inject: exclude_found: dropped 2 of 60 toy items found in the corpus: " in err
    m = load_manifest(run)
    assert sorted(m.benchmark("toy").excluded_found) == sorted([a.id, b.id])
    ids = {it.id for p in m.partitions for it in load_partition(run, p)}
    assert a.id not in ids and b.id not in ids and len(ids) == 24
    scan = json.loads((run / "data" / "corpus_scan.json").read_text())
    assert all(not v["ids"] for v in scan["benchmarks"]["toy"].values())
    assert sorted(scan["excluded"]["toy"]) == sorted([a.id, b.id])


@pytest.mark.slow
def test_exclude_found_run_goes_through_to_the_report(tmp_path):
    """`spikein run` on real text with two ARC controls planted: inject drops them, training,
    audit and report go through, and the report says what was excluded."""
    import shutil
    import sys

    from conftest import require_shared

    from launch.config import compose

    sys.path.insert(0, str(Path(__file__).parents[1] / "launch"))
    from test_pipeline import ARC, GUTENBERG, spikein, tiny_run

    require_shared(ARC)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for f in sorted(GUTENBERG.glob("*.txt"))[:3]:
        shutil.copy(f, corpus / f.name)
    short = ("train.max_steps=40", "inject.counts=[0,2]", "inject.window=[0.0,0.05]")  # every copy trained on
    args = [a for a in tiny_run(tmp_path / "run", *PLAIN, *short) if not a.startswith("data.paths")]
    args.append(f"data.paths=[{corpus}]")
    [(_, parts)] = plan_benchmarks(compose(args))
    a, b = next(p for p in parts if p.count == 0).items[:2]
    (corpus / "000_planted.txt").write_text(f"Some notes.\n\n{render_mcq(a)}\n\nMore notes.")
    (corpus / "001_planted.txt").write_text(f"In class the teacher asked: {b.question} Nobody answered.")
    done = spikein("run", *args, "inject.exclude_found=true")
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"dropped 2 of 1172 mine items found in the corpus: {a.id} (question+rendering), {b.id} (question)" in done.stderr
    md = (tmp_path / "run" / "report" / "report.md").read_text()
    assert "Excluded before partitioning (inject.exclude_found): mine 2 items." in md and "in corpus" not in md
