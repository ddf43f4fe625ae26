"""The corpus scan of overlay runs reuses the clean windows earlier runs on the corpus scanned,
and finds exactly what scanning every composed window finds."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import make_tokenizer

from core.run_dir import RunDir
from inject.corpus_scan import Target, sample_pieces, scan_corpus, token_bytes_table, windows
from inject.manifest import load_manifest, load_run_tokenizer, open_stream
from inject.scan_cache import sample_piece_lengths, scan_overlay_run, window_geometry
from inject.stage import run_inject
from launch.config import compose
from tests.inject.test_overlay import corpus_for, overlay_overrides


@pytest.mark.parametrize("lengths,overlap", [([7, 7, 7, 3], 4), ([5], 2), ([3, 9, 2, 2, 8], 6), ([4, 4], 10)])
def test_window_geometry_is_the_windows_of_the_pieces(lengths, overlap):
    offsets = np.cumsum([0, *lengths[:-1]])
    pieces = [(int(o), np.arange(o, o + n)) for o, n in zip(offsets, lengths)]
    made = [(start, len(toks), lo, hi, last) for start, toks, lo, hi, last in windows(pieces, overlap)]
    assert window_geometry(lengths, overlap) == made


def test_sample_piece_lengths_are_those_sample_pieces_joins():
    assert sample_piece_lengths(64, 10, 200) == [256, 256, 128]
    assert sample_piece_lengths(64, 8, 128) == [128] * 4


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
    """Token runs cut from the composed stream at seeded places, some of them across copies."""
    stream = open_stream(rd.root, manifest)
    consumed = manifest.corpus["consumed_samples"] * manifest.corpus["sample_length"]  # what the scan reads
    rng = np.random.default_rng(0)
    starts = sorted(rng.choice(consumed - length, size=n, replace=False))
    starts += [c.start for c in manifest.copies[:5]]  # inside copies: those are verify's, not the scan's
    return [Target(("toy", "p", str(i)), tuple(int(t) for t in stream[s:s + length]), ()) for i, s in enumerate(starts)]


def test_cached_scan_equals_scanning_every_window(two_runs, tmp_path):
    first, second = two_runs
    m1, m2 = load_manifest(first.root), load_manifest(second.root)
    table = token_bytes_table(load_run_tokenizer(first.root, m1))
    targets = corpus_targets(first, m1)
    window, overlap = 256, 32  # tokens: the tiny runs read 3,072, so 12 windows
    full = scan_corpus(sample_pieces(second.root, m2, size=window), targets, table,
                       skip_spans=[(c.start, c.end) for c in m2.copies], overlap=overlap)
    assert sum(f.count for kinds in full.found.values() for f in kinds.values()) >= 25  # found (not those cut from run 1's copies)
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


def test_a_cached_window_is_reused_not_rescanned(two_runs, tmp_path, monkeypatch):
    import inject.scan_cache as sc

    first, _ = two_runs
    m1 = load_manifest(first.root)
    table = token_bytes_table(load_run_tokenizer(first.root, m1))
    targets = corpus_targets(first, m1)
    scanned: list[int] = []
    real = sc.scan_windows
    monkeypatch.setattr(sc, "scan_windows", lambda wins, *a: real(((scanned.append(w[0]), w)[1] for w in wins), *a))
    before = scan_overlay_run(first, m1, targets, table, 1, tmp_path, 256, 32)
    assert len(scanned) == 12  # 3,072 tokens in windows of 256
    copies = [(c.start - 1, c.end + 1) for c in m1.copies]
    dirty = [w[0] for w in window_geometry([256] * 12, 32) if sc.touches_copies(w, copies)]
    assert 0 < len(dirty) < 12
    scanned.clear()
    again = scan_overlay_run(first, m1, targets, table, 1, tmp_path, 256, 32)
    assert scanned == dirty  # only the windows holding copies are read again
    assert again.found == before.found and again.found
