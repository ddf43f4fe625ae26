"""The corpus scan of overlay runs reuses the clean windows earlier runs on the corpus scanned,
and finds exactly what scanning every composed window finds."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import make_tokenizer

from core.run_dir import RunDir
from inject.corpus_scan import Index, Target, sample_pieces, scan_corpus, starts_in, token_bytes_table
from inject.manifest import load_manifest, load_run_tokenizer, open_stream
from inject.scan_cache import copy_zones, scan_overlay_run
from inject.stage import run_inject
from launch.config import compose
from tests.inject.test_overlay import corpus_for, overlay_overrides


def test_copy_zones_cover_every_start_that_could_reach_a_copy():
    zones = copy_zones([(100, 120), (130, 140), (500, 510)], overlap=16, total=1000)
    assert zones == [(83, 141), (483, 511)]  # the first two merged: their zones overlap
    offsets = np.arange(1000)
    inside = starts_in(offsets, zones)
    assert set(offsets[inside]) == set(range(83, 141)) | set(range(483, 511))


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two overlay runs on one corpus, their copies in other places (inject.seed)."""
    tmp = tmp_path_factory.mktemp("scan_cache")
    tok = tmp / "tokenizer"
    make_tokenizer(tok, vocab_size=400)
    paths = corpus_for("nanogpt", tmp, tok)
    runs = []
    for seed in (1, 2):
        cfg = compose(overlay_overrides(tmp / f"s{seed}", tok, paths, "nanogpt", f"inject.seed={seed}",
                                        f"data.cache_dir={tmp}/cache"))
        run_inject(cfg)
        runs.append(RunDir(cfg.run_dir))
    return runs


def corpus_targets(rd: RunDir, manifest, n: int = 40, length: int = 12) -> list[Target]:
    """Token runs cut from the composed stream at seeded places, some of them across copies;
    every third one also as a question (13-word matches in text space)."""
    stream = open_stream(rd.root, manifest)
    consumed = manifest.corpus["consumed_samples"] * manifest.corpus["sample_length"]  # what the scan reads
    rng = np.random.default_rng(0)
    starts = sorted(rng.choice(consumed - length, size=n, replace=False))
    starts += [c.start for c in manifest.copies[:5]]  # inside copies: those are verify's, not the scan's
    as_text = Index.build([], token_bytes_table(load_run_tokenizer(rd.root, manifest)))  # the scan's own bytes
    out = []
    for i, s in enumerate(starts):
        span = [int(t) for t in stream[s:s + length]]
        words = tuple(as_text.decode(np.asarray(stream[s:s + 8 * length]))[0].split())[1:14] if i % 3 == 0 else ()
        out.append(Target(("toy", "p", str(i)), tuple(span), words))
    return out


def test_cached_scan_equals_scanning_every_window(two_runs, tmp_path):
    first, second = two_runs
    m1, m2 = load_manifest(first.root), load_manifest(second.root)
    table = token_bytes_table(load_run_tokenizer(first.root, m1))
    targets = corpus_targets(first, m1)
    window, overlap = 256, 32  # tokens: the tiny runs read 3,072, so 12 windows
    full = scan_corpus(sample_pieces(second.root, m2, size=window), targets, table,
                       skip_spans=[(c.start, c.end) for c in m2.copies], overlap=overlap)
    assert sum(f.count for kinds in full.found.values() for f in kinds.values()) >= 25  # found (not those cut from run 1's copies)
    assert any("question" in kinds for kinds in full.found.values())  # text-space matches too
    cache = tmp_path / "cache"
    scan_overlay_run(first, m1, targets, table, 1, cache, window, overlap)  # the first run fills the cache
    cached_files = list((cache / "scans").glob("*.json"))
    assert len(cached_files) == 1
    reused = scan_overlay_run(second, m2, targets, table, 1, cache, window, overlap)
    fresh = scan_overlay_run(second, m2, targets, table, 1, tmp_path / "empty", window, overlap)
    summary = {k: {kind: (f.count, f.offsets) for kind, f in kinds.items()} for k, kinds in full.found.items()}
    for result in (reused, fresh):
        assert {k: {kind: (f.count, f.offsets) for kind, f in kinds.items()} for k, kinds in result.found.items()} == summary
        assert result.tokens == full.tokens


def test_a_later_run_reads_only_the_tokens_near_its_copies(two_runs, tmp_path, monkeypatch):
    import inject.scan_cache as sc

    first, second = two_runs
    m1, m2 = load_manifest(first.root), load_manifest(second.root)
    table = token_bytes_table(load_run_tokenizer(first.root, m1))
    targets = corpus_targets(first, m1)
    scan_overlay_run(first, m1, targets, table, 1, tmp_path, 256, 32)
    read: list[int] = []
    real = sc.scan_windows
    monkeypatch.setattr(sc, "scan_windows", lambda wins, *a: real(((read.append(len(w[1])), w)[1] for w in wins), *a))
    scan_overlay_run(second, m2, targets, table, 1, tmp_path, 256, 32)
    overlap = sc.scan_overlap(targets, 32)
    near = sum(min(b, 3072) - max(0, a) + 2 * overlap for a, b in copy_zones([(c.start, c.end) for c in m2.copies], overlap, 3072))
    assert 0 < sum(read) <= near  # the copies' neighbourhoods, not the corpus


def test_sweep_points_scan_the_corpus_once(tmp_path, monkeypatch):
    """inject.counts=[0,1,3] then [0,2,3]: the same items under other names and orders; the
    second point reads the cached occurrences, and its corpus_scan.json equals a fresh scan's."""
    import json

    import inject.scan_cache as sc

    tok = tmp_path / "tokenizer"
    make_tokenizer(tok, vocab_size=400)
    paths = corpus_for("nanogpt", tmp_path, tok)
    bare_scans = []
    real = sc.bare_corpus_hits
    monkeypatch.setattr(sc, "bare_corpus_hits", lambda *a: bare_scans.append(1) or real(*a))

    def point(name: str, counts: str, cache: str) -> dict:
        cfg = compose(overlay_overrides(tmp_path / name, tok, paths, "nanogpt", f"inject.counts={counts}",
                                        f"data.cache_dir={tmp_path}/{cache}"))
        run_inject(cfg)
        scan = json.loads(RunDir(cfg.run_dir).corpus_scan.read_text())
        return {k: v for k, v in scan.items() if k != "seconds"}

    point("a", "[0,1,3]", "cache")
    assert len(bare_scans) == 1
    second = point("b", "[0,2,3]", "cache")
    assert len(bare_scans) == 1  # read from the cache
    assert point("c", "[0,2,3]", "fresh") == second and len(bare_scans) == 2


def test_a_run_without_copies_takes_the_bare_corpus_finds(tmp_path):
    """Controls only (inject.counts=[0,0]): no copy zones, every cached find kept."""
    tok = tmp_path / "tokenizer"
    make_tokenizer(tok, vocab_size=400)
    paths = corpus_for("nanogpt", tmp_path, tok)
    cfg = compose(overlay_overrides(tmp_path / "r", tok, paths, "nanogpt", "inject.counts=[0,0]"))
    run_inject(cfg)
    rd = RunDir(cfg.run_dir)
    m = load_manifest(rd.root)
    assert m.copies == []
    table = token_bytes_table(load_run_tokenizer(rd.root, m))
    targets = corpus_targets(rd, m)
    full = scan_corpus(sample_pieces(rd.root, m, size=256), targets, table, overlap=32)
    for _ in range(2):  # the second time from the cache
        got = scan_overlay_run(rd, m, targets, table, 1, tmp_path / "cache", 256, 32)
        assert got.found == full.found and got.found
