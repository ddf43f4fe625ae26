"""The corpus scan of an overlay run, reusing what earlier runs on the same corpus found.

A sweep's points share the corpus and differ only in their copies, which sit in a few
training samples. The scan reads the composed stream in windows (:func:`corpus_scan.windows`)
whose hits depend only on the window's tokens and bounds, so a window that no copy touches
("clean") has the hits it has in the bare corpus. Those are kept in
``<data.cache_dir>/scans/<key>.json``, keyed by everything a window's hits depend on (the
corpus fingerprint and rows read, the window size, the targets, the tokenizer's bytes); a later
run scans only its windows that hold copies and the clean windows not cached yet. The result
equals scanning every window (``tests/inject/test_scan_cache.py``).
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, Iterator

from inject.corpus_scan import OVERLAP, WINDOW, Hit, ScanResult, Target, count_hits, scan_overlap, scan_windows

Window = tuple[int, int, int, int, bool]  # (first token, tokens, owned starts lo, hi, last), as corpus_scan.windows


def window_geometry(piece_lengths: list[int], overlap: int) -> list[Window]:
    """The windows :func:`corpus_scan.windows` makes of contiguous pieces of these lengths,
    without their tokens."""
    out: list[Window] = []
    offset, carry, pending = 0, 0, None
    for n in piece_lengths:
        start, length = offset - carry, carry + n
        lo = start + 1 if start > 0 else 0
        if pending is not None:
            out.append((pending[0], pending[1], pending[2], lo, False))
        pending = (start, length, lo)
        carry, offset = min(overlap, length), offset + n
    if pending is not None:
        out.append((pending[0], pending[1], pending[2], pending[0] + pending[1], True))
    return out


def sample_piece_lengths(sample_length: int, samples: int, size: int = WINDOW) -> list[int]:
    """Piece lengths of :func:`corpus_scan.sample_pieces`: whole samples, about ``size`` tokens each."""
    per_piece = -(-size // sample_length)
    return [min(per_piece, samples - s) * sample_length for s in range(0, samples, per_piece)]


def cache_key(manifest, targets: list[Target], token_bytes: list[bytes], overlap: int, window: int) -> str:
    c = manifest.corpus
    h = hashlib.sha256(json.dumps({"reader": c["reader"], "fingerprint": c["fingerprint"], "start_row": c["start_row"],
                                   "sample_length": c["sample_length"], "samples": c["consumed_samples"],
                                   "window": window, "overlap": overlap}, sort_keys=True, default=str).encode())
    for t in targets:  # hits name targets by position: the same contents in the same order
        h.update(repr((t.rendering, t.words)).encode())
    h.update(b"\0".join(token_bytes))
    return h.hexdigest()[:24]


def touches_copies(w: Window, spans: list[tuple[int, int]]) -> bool:
    start, end = w[0], w[0] + w[1]
    return any(a < end and start < b for a, b in spans)


def scan_overlay_run(rd, manifest, targets: list[Target], token_bytes: list[bytes], workers: int,
                     cache_dir: Path, window: int = WINDOW, overlap: int = OVERLAP) -> ScanResult:
    """:func:`corpus_scan.scan_corpus` over the run's composed samples, clean windows from the cache."""
    from core.atomic import write_json
    from inject.manifest import open_stream

    t0 = time.time()
    overlap = scan_overlap(targets, overlap)
    length, samples = int(manifest.corpus["sample_length"]), int(manifest.corpus["consumed_samples"])
    if not targets:
        return ScanResult({}, length * samples, time.time() - t0)
    geometry = window_geometry(sample_piece_lengths(length, samples, window), overlap)
    copies = sorted((c.start - 1, c.end + 1) for c in manifest.copies)  # a copy displaces its EOS wrappers too
    path = cache_dir / "scans" / f"{cache_key(manifest, targets, token_bytes, overlap, window)}.json"
    cached: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    reuse = {i for i, w in enumerate(geometry) if str(i) in cached and not touches_copies(w, copies)}
    stream = open_stream(rd.root, manifest, check=False)  # the fingerprint was checked when the data was built

    def todo() -> Iterator[tuple]:
        for i, w in enumerate(geometry):
            if i not in reuse:
                yield (w[0], stream[w[0]:w[0] + w[1]], *w[2:])

    scanned = iter(scan_windows(todo(), targets, token_bytes, workers))
    hit_lists: list[list[Hit]] = []
    for i, w in enumerate(geometry):  # cached by window number: the geometry is part of the key
        hits = [tuple(h) for h in cached[str(i)]] if i in reuse else next(scanned)
        hit_lists.append(hits)
        if i not in reuse and not touches_copies(w, copies):
            cached[str(i)] = [list(h) for h in hits]
    for _ in scanned:  # let the worker pool close
        pass
    if len(reuse) < len(geometry):
        write_json(path, cached)
    return ScanResult(count_hits(hit_lists, targets, [(c.start, c.end) for c in manifest.copies]),
                      length * samples, time.time() - t0)
