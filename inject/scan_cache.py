"""The corpus scan of an overlay run, the bare corpus scanned once for all runs on it.

A sweep's points share the corpus and differ only in their copies. An occurrence is a
property of the tokens it spans (plus a word boundary each side), and every occurrence the
scan counts spans at most ``overlap`` tokens (:func:`corpus_scan.windows`). So the composed
stream's occurrences are the bare corpus's, except near copies: the bare corpus's hits are
kept in ``<data.cache_dir>/scans/<key>.json`` (keyed by the corpus fingerprint and rows read,
the window, the targets and the tokenizer's bytes), and a run rescans only the composed tokens
around its copies. The result equals scanning every composed window
(``tests/inject/test_scan_cache.py``); a sweep point reads ``overlap`` tokens around each copy
instead of the corpus.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np

from inject.corpus_scan import (
    OVERLAP,
    WINDOW,
    Hit,
    ScanResult,
    Target,
    count_hits,
    scan_overlap,
    scan_windows,
    starts_in,
    stream_pieces,
    windows,
)

Zone = tuple[int, int]  # [first, end) token offsets whose hits a run rescans


def distinct_contents(targets: list[Target]) -> list[Target]:
    """The targets' distinct (rendering, words), sorted: the same for every sweep point whose
    partitions hold the same items, whatever their names and orders."""
    contents = sorted({(t.rendering, t.words) for t in targets})
    return [Target(("", "", str(i)), r, w) for i, (r, w) in enumerate(contents)]


def cache_key(manifest, contents: list[Target], token_bytes: list[bytes], overlap: int, window: int) -> str:
    c = manifest.corpus
    h = hashlib.sha256(json.dumps({"reader": c["reader"], "files": c["fingerprint"]["files"], "start_row": c["start_row"],
                                   "sample_length": c["sample_length"], "samples": c["consumed_samples"],
                                   "window": window, "overlap": overlap}, sort_keys=True, default=str).encode())
    for t in contents:  # (the fingerprint's rows_sha256 is of the rows holding this run's copies: left out)
        h.update(repr((t.rendering, t.words)).encode())
    h.update(b"\0".join(token_bytes))
    return h.hexdigest()[:24]


def as_run_targets(hits: list[Hit], contents: list[Target], targets: list[Target]) -> list[Hit]:
    """Hits on distinct contents -> hits on the run's targets (one per target of that content)."""
    runs: dict[tuple, list[int]] = {}
    for i, t in enumerate(targets):
        runs.setdefault((t.rendering, t.words), []).append(i)
    of_content = [runs[(c.rendering, c.words)] for c in contents]
    return [(i, kind, offset, k) for c, kind, offset, k in hits for i in of_content[c]]


def copy_zones(spans: list[tuple[int, int]], overlap: int, total: int) -> list[Zone]:
    """Merged offsets whose occurrences may differ from the bare corpus: a hit starting there
    could reach into a copy (``overlap`` tokens before it) or its word boundary (one more)."""
    zones: list[list[int]] = []
    for a, b in sorted(spans):
        lo, hi = max(0, a - overlap - 1), min(total, b + 1)
        if zones and lo <= zones[-1][1]:
            zones[-1][1] = max(zones[-1][1], hi)
        else:
            zones.append([lo, hi])
    return [(lo, hi) for lo, hi in zones]


def bare_corpus_hits(stream, samples: int, targets: list[Target], token_bytes: list[bytes], workers: int,
                     window: int, overlap: int) -> list[Hit]:
    """Every occurrence in the corpus rows training reads, no copies laid over them."""
    from inject.overlay import ComposedStream

    bare = ComposedStream(stream.corpus, stream.start_row, stream.n_samples, stream.index[:0], stream.tokens[:0])
    hit_lists = scan_windows(windows(stream_pieces(bare, samples, window), overlap), targets, token_bytes, workers)
    return [h for hits in hit_lists for h in hits]


def scan_overlay_run(rd, manifest, targets: list[Target], token_bytes: list[bytes], workers: int,
                     cache_dir: Path, window: int = WINDOW, overlap: int = OVERLAP) -> ScanResult:
    """:func:`corpus_scan.scan_corpus` over the run's composed samples: the bare corpus's hits
    (cached) away from the copies, the composed tokens rescanned near them."""
    from core.atomic import write_json
    from inject.manifest import open_stream

    t0 = time.time()
    overlap = scan_overlap(targets, overlap)
    length, samples = int(manifest.corpus["sample_length"]), int(manifest.corpus["consumed_samples"])
    total = length * samples
    if not targets:
        return ScanResult({}, total, time.time() - t0)
    stream = open_stream(rd.root, manifest, check=False)  # the fingerprint was checked when the data was built
    contents = distinct_contents(targets)
    path = cache_dir / "scans" / f"{cache_key(manifest, contents, token_bytes, overlap, window)}.json"
    if path.is_file():
        found_before: list[Hit] = [tuple(h) for h in json.loads(path.read_text())["hits"]]
    else:
        found_before = bare_corpus_hits(stream, samples, contents, token_bytes, workers, window, overlap)
        write_json(path, {"hits": [list(h) for h in found_before]})
    bare = as_run_targets(found_before, contents, targets)
    zones = copy_zones([(c.start, c.end) for c in manifest.copies], overlap, total)
    near = starts_in(np.array([h[2] for h in bare], dtype=np.int64), zones)
    kept = [h for h, z in zip(bare, near) if not z]
    # a window owns the starts after its first token (corpus_scan.windows): one token of left context
    rescans = ((max(0, a - 1), stream[max(0, a - 1):min(total, b + overlap)], a, b, b + overlap >= total)
               for a, b in zones)
    redone = [h for hits in scan_windows(rescans, targets, token_bytes, workers) for h in hits]
    hits = sorted(kept + redone, key=lambda h: (h[2], h[0], h[1], h[3]))  # stream order, as scan_window sorts
    found = count_hits([hits], targets, [(c.start, c.end) for c in manifest.copies])
    return ScanResult(found, total, time.time() - t0)
