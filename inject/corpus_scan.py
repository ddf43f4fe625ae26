"""Find benchmark items in the tokens training will consume, before training.

Two ways an item can be in the corpus, and the space each is matched in:

- ``rendering``: the exact token sequence of the item as spikein renders it, in token
  space, because that is what training sees and what `inject.verify` counts (a copy the
  corpus already holds adds to the planned count: "x4" is then really "x5").
- ``question``: the item's question text quoted anywhere (a web page, another
  template), in text space, because the normalisation that makes quotes match
  (lowercase, punctuation dropped, whitespace collapsed: GPT-3's decontamination,
  Brown et al. 2020, appendix C) changes the tokens. Any 13 consecutive words of the
  question, or the whole question when shorter, down to 8 words (GPT-3's floor: shorter
  questions, "Theories", are in every book and are left to the rendering). Tokens are decoded to bytes through a
  per-token byte table (no tokenizer call), normalised with one ``bytes.translate``,
  and n-grams are matched by a rolling hash over word hashes (numpy prefix sums: no
  Python object per word or token beyond the decode), each candidate then
  checked word for word.

Streaming: the scan reads ``(offset, tokens)`` pieces (a memmap of ``data/stream.bin``
today; any iterator of contiguous pieces, e.g. a pre-tokenized corpus with its
overlay) and scans overlapping windows of them in worker processes, so memory is a
few windows whatever the corpus size. Every occurrence is owned by the one window its
first token falls in, so counts do not depend on the window size or the worker count
(an occurrence longer than ``OVERLAP`` tokens may be missed at a window edge).
"""
from __future__ import annotations

import multiprocessing as mp
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

NGRAM = 13  # words, as GPT-3's decontamination
MIN_WORDS = 8  # shorter questions are matched by rendering only: GPT-3's floor on n (whole MMLU questions
# of 1-3 words, "Theories", "The heart has:", occur in any book: 19 finds in 10 MB of Gutenberg)
PREFIX = 16  # tokens of a rendering hashed to find candidates
WINDOW = 1 << 20  # tokens per task (a worker holds a few times its bytes as Python objects)
OVERLAP = 256  # tokens two windows share (at least the longest rendering + 1): every occurrence seen whole;
# 13 words of a question span ~20-40 tokens, and a sweep point rescans this many around each copy
SHOWN_OFFSETS = 5  # first token offsets recorded per item and way
RUN_GAP = 64  # tokens between two n-grams of one quoted question (merged into one occurrence)
_MASK = (1 << 64) - 1
_BASE = 0x9E3779B97F4A7C15  # odd: invertible mod 2**64
_BASE_INV = pow(_BASE, -1, 1 << 64)
# bytes.translate table: ASCII letters lowercased, digits kept, every other ASCII byte a
# word break; bytes >= 0x80 (UTF-8 of non-ASCII letters) kept as word characters.
NORMALISE = bytes(
    (c + 32 if 65 <= c <= 90 else c) if (48 <= c <= 57 or 65 <= c <= 90 or 97 <= c <= 122 or c >= 128) else 32
    for c in range(256)
)


def question_words(text: str) -> tuple[bytes, ...]:
    return tuple(text.encode("utf-8", "replace").translate(NORMALISE).split())


@dataclass(frozen=True)
class Target:
    """One item to look for: its key (benchmark, partition, id), rendering tokens, question words."""

    key: tuple[str, str, str]
    rendering: tuple[int, ...]
    words: tuple[bytes, ...]


# ---- the per-process index ---------------------------------------------------------


def _poly(values: Iterable[int]) -> int:
    """sum v_k * BASE**k mod 2**64: the same hash _rolling gives at position 0."""
    h, p = 0, 1
    for v in values:
        h = (h + (v & _MASK) * p) & _MASK
        p = (p * _BASE) & _MASK
    return h


def _powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    one = np.ones(1, dtype=np.uint64)  # a Python int would promote the uint64 powers to float64
    pw = np.concatenate([one, np.cumprod(np.full(n - 1, _BASE, dtype=np.uint64))])
    inv = np.concatenate([one, np.cumprod(np.full(n - 1, _BASE_INV, dtype=np.uint64))])
    return pw, inv


def _rolling(values: np.ndarray, length: int, pw: np.ndarray, inv: np.ndarray) -> np.ndarray:
    """The hash of every ``length``-run of ``values`` (uint64, wrapping), one per start."""
    n = len(values)
    prefix = np.zeros(n + 1, dtype=np.uint64)
    np.cumsum(values * pw[:n], out=prefix[1:])
    return (prefix[length:] - prefix[:-length]) * inv[: n - length + 1]


BLOOM_BITS = 22  # a 4 Mi-entry table of the keys' low bits: one gather rejects almost every position


def _bloom(keys: np.ndarray) -> np.ndarray:
    table = np.zeros(1 << BLOOM_BITS, dtype=bool)
    table[keys & np.uint64((1 << BLOOM_BITS) - 1)] = True
    return table


def _member(hashes: np.ndarray, keys: np.ndarray, bloom: np.ndarray) -> np.ndarray:
    """Positions of ``hashes`` found in the sorted ``keys`` (``bloom``: :func:`_bloom` of them)."""
    if not len(keys) or not len(hashes):
        return np.zeros(0, dtype=np.int64)
    maybe = np.flatnonzero(bloom[hashes & np.uint64((1 << BLOOM_BITS) - 1)])
    at = np.minimum(np.searchsorted(keys, hashes[maybe]), len(keys) - 1)
    return maybe[keys[at] == hashes[maybe]]


@dataclass
class Index:
    """What one process needs to scan: hashed rendering prefixes and question n-grams."""

    targets: list[Target]
    token_bytes: list[bytes]
    token_len: np.ndarray
    prefix: int = PREFIX
    by_prefix: dict[int, list[int]] = field(default_factory=dict)
    prefix_keys: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    prefix_bloom: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    # n-gram length -> (sorted hashes, their bloom table, target of each hash, n-gram index k of each)
    ngrams: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)
    normalised: list[bytes] | None = None  # token_bytes, normalised (decode)
    pw: np.ndarray = field(default_factory=lambda: np.ones(1, np.uint64))
    inv: np.ndarray = field(default_factory=lambda: np.ones(1, np.uint64))

    @classmethod
    def build(cls, targets: list[Target], token_bytes: list[bytes]) -> Index:
        index = cls(targets, token_bytes, np.fromiter(map(len, token_bytes), np.int64, len(token_bytes)))
        lengths = [len(t.rendering) for t in targets if t.rendering]
        index.prefix = min([PREFIX, *lengths])
        for i, t in enumerate(targets):
            if t.rendering:
                index.by_prefix.setdefault(_poly(v + 1 for v in t.rendering[: index.prefix]), []).append(i)
        index.prefix_keys = np.array(sorted(index.by_prefix), dtype=np.uint64)
        index.prefix_bloom = _bloom(index.prefix_keys)
        index.ngrams = _ngram_tables(targets, index)
        return index

    def decode(self, tokens: np.ndarray) -> tuple[bytes, np.ndarray]:
        """The normalised bytes of ``tokens`` and each token's end in them."""
        if self.normalised is None:
            self.normalised = [b.translate(NORMALISE) for b in self.token_bytes]
        return b"".join(map(self.normalised.__getitem__, tokens.tolist())), np.cumsum(self.token_len[tokens])

    def powers(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        if len(self.pw) < n:
            self.pw, self.inv = _powers(max(n, 2 * len(self.pw)))
        return self.pw, self.inv


def _ngram_tables(targets: list[Target], index: Index) -> dict[int, tuple]:
    """Per n-gram length: every question n-gram's hash (sorted), bloom table, target and position k."""
    word_hash = {w: _poly(w) for w in {w for t in targets for w in t.words}}
    parts: dict[int, list[tuple[np.ndarray, int]]] = {}
    for i, t in enumerate(targets):
        n = min(NGRAM, len(t.words))
        if n >= MIN_WORDS:
            hashes = np.array([word_hash[w] for w in t.words], dtype=np.uint64)
            pw, inv = index.powers(len(hashes) + 1)
            parts.setdefault(n, []).append((_rolling(hashes, n, pw, inv), i))  # as the scan hashes each n-gram
    tables = {}
    for n, rows in parts.items():
        hashes = np.concatenate([h for h, _ in rows])
        target = np.concatenate([np.full(len(h), i, dtype=np.int64) for h, i in rows])
        k = np.concatenate([np.arange(len(h)) for h, _ in rows])
        order = np.argsort(hashes, kind="stable")
        tables[n] = (hashes[order], _bloom(hashes), target[order], k[order])
    return tables


# ---- one window ------------------------------------------------------------------

Hit = tuple[int, str, int, int]  # (target, "rendering" | "question", token offset, n-gram index k)


def scan_window(index: Index, offset: int, tokens: np.ndarray, lo: int, hi: int, last: bool) -> list[Hit]:
    """Occurrences whose first token lies in ``[lo, hi)`` (absolute offsets), sorted by offset."""
    hits = _rendering_hits(index, offset, tokens, lo, hi) + _question_hits(index, offset, tokens, lo, hi, last)
    return sorted(hits, key=lambda h: (h[2], h[0], h[1], h[3]))


def _rendering_hits(index: Index, offset: int, tokens: np.ndarray, lo: int, hi: int) -> list[Hit]:
    n, k = len(tokens), index.prefix
    if not len(index.prefix_keys) or n < k:
        return []
    pw, inv = index.powers(n + 1)
    hashes = _rolling(tokens.astype(np.uint64) + np.uint64(1), k, pw, inv)
    hits = []
    found = _member(hashes, index.prefix_keys, index.prefix_bloom)
    for i in found[(offset + found >= lo) & (offset + found < hi)]:
        for t in index.by_prefix[int(hashes[i])]:
            pattern = index.targets[t].rendering
            if i + len(pattern) <= n and np.array_equal(tokens[i : i + len(pattern)], pattern):
                hits.append((t, "rendering", offset + int(i), 0))
    return hits


def _question_hits(index: Index, offset: int, tokens: np.ndarray, lo: int, hi: int, last: bool) -> list[Hit]:
    if not index.ngrams or not len(tokens):
        return []
    text, token_end = index.decode(tokens)
    chars = np.frombuffer(text, dtype=np.uint8)
    edges = np.diff(np.concatenate([[False], chars != 32, [False]]).astype(np.int8))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    m = len(starts)
    pw, inv = index.powers(len(chars) + 1)
    prefix = np.zeros(len(chars) + 1, dtype=np.uint64)  # word hash = _poly(its bytes), no Python object per word
    np.cumsum(chars.astype(np.uint64) * pw[: len(chars)], out=prefix[1:])
    word_hashes = (prefix[ends] - prefix[starts]) * inv[starts]
    hits = []
    for n, (keys, bloom, target, kth) in index.ngrams.items():
        if m < n:
            continue
        hashes = _rolling(word_hashes, n, pw, inv)
        at = _member(hashes, keys, bloom)
        first = offset + np.searchsorted(token_end, starts[at], side="right")  # the token each n-gram starts in
        whole = (ends[at + n - 1] < len(text)) | last  # the last word of a window may be cut
        for i, start in zip(at[(first >= lo) & (first < hi) & whole], first[(first >= lo) & (first < hi) & whole]):
            found = tuple(text[a:b] for a, b in zip(starts[i : i + n], ends[i : i + n]))
            lo_at, hi_at = np.searchsorted(keys, hashes[i : i + 1], "left")[0], np.searchsorted(keys, hashes[i : i + 1], "right")[0]
            for t, k in zip(target[lo_at:hi_at].tolist(), kth[lo_at:hi_at].tolist()):
                if index.targets[t].words[k : k + n] == found:
                    hits.append((t, "question", int(start), k))
    return hits


# ---- windows over a stream of pieces, in parallel ------------------------------------


def windows(pieces: Iterable[tuple[int, np.ndarray]], overlap: int = OVERLAP) -> Iterator[tuple]:
    """Contiguous pieces -> ``(offset, tokens, lo, hi, last)`` windows sharing ``overlap`` tokens.

    A window repeats the previous piece's last ``overlap`` tokens, so an occurrence that
    starts near a piece's end is seen whole. Window ``w`` owns starts in ``[lo, hi)``:
    never its own first token (it may continue a word the previous window saw whole),
    and the owned ranges tile the stream.
    """
    carry = np.zeros(0, dtype=np.int64)
    pending = None
    expected = 0
    for offset, tokens in pieces:
        if offset != expected:
            raise ValueError(f"corpus scan: piece at token {offset}, expected {expected} (pieces must be contiguous)")
        expected = offset + len(tokens)
        window = np.concatenate([carry, np.asarray(tokens)]) if len(carry) else np.asarray(tokens)
        start = offset - len(carry)
        lo = start + 1 if start > 0 else 0
        if pending is not None:
            yield (*pending[:3], lo, False)
        pending = (start, window, lo)
        carry = window[-overlap:] if overlap else window[:0]
    if pending is not None:
        yield (*pending[:3], pending[0] + len(pending[1]), True)


def _training_pieces(rd, manifest) -> Iterator[tuple[int, np.ndarray]]:
    """What training reads: the written stream, or the corpus with its overlay (never copied whole)."""
    if manifest.corpus is None:
        return memmap_pieces(rd.stream, manifest.dtype, manifest.n_tokens)
    return sample_pieces(rd.root, manifest)


def sample_pieces(run_root, manifest, size: int = WINDOW) -> Iterator[tuple[int, np.ndarray]]:
    """The composed training samples (corpus + overlay) training consumes, as :func:`stream_pieces`."""
    from inject.manifest import open_stream

    return stream_pieces(open_stream(run_root, manifest), int(manifest.corpus["consumed_samples"]), size)


def stream_pieces(stream, samples: int, size: int = WINDOW) -> Iterator[tuple[int, np.ndarray]]:
    """Samples ``0..samples-1`` of a composed stream, whole samples joined into pieces of about
    ``size`` tokens at training-token offsets (sample ``s`` starts at ``s * sample_length``)."""
    per_piece = -(-size // stream.length)
    for first in range(0, samples, per_piece):
        yield first * stream.length, stream.samples(first, min(per_piece, samples - first)).reshape(-1)


def memmap_pieces(path, dtype: str, n_tokens: int, size: int = WINDOW) -> Iterator[tuple[int, np.ndarray]]:
    """A token file as contiguous pieces, read from disk one at a time."""
    tokens = np.memmap(path, dtype=dtype, mode="r", shape=(n_tokens,))
    for a in range(0, n_tokens, size):
        yield a, np.array(tokens[a : a + size])
    del tokens


_INDEX: Index | None = None  # per worker process


def _init(targets: list[Target], token_bytes: list[bytes]) -> None:
    global _INDEX
    _INDEX = Index.build(targets, token_bytes)


def _task(w: tuple) -> list[Hit]:
    return scan_window(_INDEX, *w)  # type: ignore[arg-type]


def scan_pieces(pieces: Iterable[tuple[int, np.ndarray]], targets: list[Target], token_bytes: list[bytes],
                workers: int = 1, overlap: int = OVERLAP) -> Iterator[list[Hit]]:
    """Each window's hits, in stream order (at most two windows per worker in flight)."""
    return scan_windows(windows(pieces, overlap), targets, token_bytes, workers)


def scan_windows(wins: Iterable[tuple], targets: list[Target], token_bytes: list[bytes],
                 workers: int = 1) -> Iterator[list[Hit]]:
    """Each ``(offset, tokens, lo, hi, last)`` window's hits, in order. Small windows go to the
    workers in batches of about WINDOW tokens (one task each: a task costs more than a small scan)."""
    if not targets:
        return
    if workers <= 1:
        _init(targets, token_bytes)
        yield from map(_task, wins)
        return
    with mp.get_context("fork").Pool(workers, initializer=_init, initargs=(targets, token_bytes)) as pool:
        pending: deque = deque()
        for batch in _batches(wins, WINDOW):
            pending.append(pool.apply_async(_tasks, (batch,)))
            if len(pending) >= 2 * workers:
                yield from pending.popleft().get()
        while pending:
            yield from pending.popleft().get()


def _batches(wins: Iterable[tuple], tokens: int) -> Iterator[list[tuple]]:
    batch: list[tuple] = []
    size = 0
    for w in wins:
        batch.append(w)
        size += len(w[1])
        if size >= tokens:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _tasks(ws: list[tuple]) -> list[list[Hit]]:
    return [_task(w) for w in ws]


# ---- counting occurrences ------------------------------------------------------------


@dataclass
class Found:
    """One item's occurrences of one kind: how often, and where the first few start."""

    count: int = 0
    offsets: list[int] = field(default_factory=list)
    last: tuple[int, int] = (-(1 << 62), -1)  # (offset, k) of the last question n-gram, to merge runs

    def add(self, offset: int, k: int, kind: str) -> None:
        prev_offset, prev_k = self.last
        self.last = (offset, k)
        if kind == "question" and k == prev_k + 1 and 0 < offset - prev_offset <= RUN_GAP:
            return  # the next 13 words of the same quote
        self.count += 1
        if len(self.offsets) < SHOWN_OFFSETS:
            self.offsets.append(offset)


@dataclass
class ScanResult:
    found: dict[tuple[str, str, str], dict[str, Found]]
    tokens: int
    seconds: float


def scan_corpus(pieces: Iterable[tuple[int, np.ndarray]], targets: list[Target], token_bytes: list[bytes], *,
                workers: int = 1, skip_spans: Sequence[tuple[int, int]] = (), overlap: int = OVERLAP) -> ScanResult:
    """Every target's occurrences in the pieces, except those starting inside ``skip_spans``
    (the injected copies: counted by verify, not corpus)."""
    t0 = time.time()
    spans = sorted(skip_spans)
    seen = [0]

    def counted(ps):
        for offset, tokens in ps:
            seen[0] = offset + len(tokens)
            yield offset, tokens

    hits = scan_pieces(counted(pieces), targets, token_bytes, workers, scan_overlap(targets, overlap))
    return ScanResult(count_hits(hits, targets, spans), seen[0], time.time() - t0)


def scan_overlap(targets: list[Target], overlap: int = OVERLAP) -> int:
    return max([overlap, *(len(t.rendering) + 1 for t in targets)])  # every rendering fits in a window's tail


def count_hits(hit_lists: Iterable[list[Hit]], targets: list[Target],
               skip_spans: Sequence[tuple[int, int]]) -> dict[tuple[str, str, str], dict[str, Found]]:
    """Each target's occurrences from the windows' hits (in stream order), those starting
    inside ``skip_spans`` (disjoint) left out."""
    spans = sorted(skip_spans)
    found: dict[tuple[str, str, str], dict[str, Found]] = {}
    for hits in hit_lists:
        skipped = starts_in(np.array([h[2] for h in hits], dtype=np.int64), spans)
        for (t, kind, offset, k), skip in zip(hits, skipped):
            if not skip:
                found.setdefault(targets[t].key, {}).setdefault(kind, Found()).add(offset, k, kind)
    return found


def starts_in(offsets: np.ndarray, spans: Sequence[tuple[int, int]]) -> np.ndarray:
    """Which ``offsets`` lie inside one of ``spans`` (sorted, disjoint ``[start, end)``)."""
    if not len(spans) or not len(offsets):
        return np.zeros(len(offsets), dtype=bool)
    starts = np.array([a for a, _ in spans], dtype=np.int64)
    ends = np.array([b for _, b in spans], dtype=np.int64)
    j = np.searchsorted(starts, offsets, side="right") - 1
    return (j >= 0) & (offsets < ends[np.maximum(j, 0)])


# ---- tokens -> bytes ------------------------------------------------------------------


def _byte_level_alphabet() -> dict[str, int]:
    """GPT-2's byte <-> printable-character map, inverted (char -> byte)."""
    keep = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    chars, extra = list(keep), 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(keep, chars)}


def token_bytes_table(tokenizer) -> list[bytes]:
    """The bytes each token id decodes to (special tokens: a line break, which ends a word)."""
    n = len(tokenizer)
    pieces = tokenizer.convert_ids_to_tokens(list(range(n)))
    special = set(tokenizer.all_special_ids)
    decoder = type(getattr(getattr(tokenizer, "backend_tokenizer", None), "decoder", None)).__name__
    alphabet = _byte_level_alphabet() if decoder == "ByteLevel" else None
    table = []
    for i, piece in enumerate(pieces):
        if i in special or piece is None:
            table.append(b"\n")
        elif alphabet is not None and all(c in alphabet for c in piece):
            table.append(bytes(alphabet[c] for c in piece))
        elif len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):  # sentencepiece byte fallback
            table.append(bytes([int(piece[3:5], 16)]))
        else:
            table.append(piece.replace("\u2581", " ").encode("utf-8"))  # sentencepiece word marker
    return table


# ---- a run's data/ --------------------------------------------------------------------


def item_target(key: tuple[str, str, str], rendering: Sequence[int], question: str) -> Target:
    return Target(key, tuple(int(t) for t in rendering), question_words(question))


def write_run_scan(run_root, manifest, workers: int = 1, cache_dir: str | Path | None = None) -> dict:
    """Scan ``data/stream.bin`` (the injected copies left out) for every partition's items;
    write ``data/corpus_scan.json`` and say what was found. An overlay run with ``cache_dir``
    reuses what earlier runs on the same corpus found (:mod:`inject.scan_cache`)."""
    from core.atomic import write_json
    from core.run_dir import RunDir
    from inject.manifest import load_partition, load_run_tokenizer
    from inject.render import encode_items

    rd = RunDir(run_root)
    tokenizer = load_run_tokenizer(rd.root, manifest)
    targets = []
    for part in manifest.partitions:
        items = load_partition(rd.root, part)
        renderings = encode_items(tokenizer, items, manifest.benchmark(part.benchmark).renderer)
        targets += [item_target((part.benchmark, part.name, it.id), r, it.question) for it, r in zip(items, renderings)]
    table = token_bytes_table(tokenizer)
    if manifest.corpus is not None and cache_dir is not None:  # a corpus shared by runs: its clean windows once
        from inject.scan_cache import scan_overlay_run

        result = scan_overlay_run(rd, manifest, targets, table, workers, Path(cache_dir))
    else:
        result = scan_corpus(_training_pieces(rd, manifest), targets, table, workers=workers,
                             skip_spans=[(c.start, c.end) for c in manifest.copies])
    report = scan_json(manifest, result)
    write_json(rd.corpus_scan, report)
    print(summary_line(report))
    return report


def scan_json(manifest, result: ScanResult) -> dict:
    """``corpus_scan.json``: per benchmark and partition, the ids found, how, how often, where."""
    benchmarks: dict[str, dict] = {}
    for part in manifest.partitions:
        items = {key[2]: {kind: {"count": f.count, "offsets": f.offsets} for kind, f in kinds.items()}
                 for key, kinds in result.found.items() if key[:2] == (part.benchmark, part.name)}
        benchmarks.setdefault(part.benchmark, {})[part.name] = {
            "count": part.count, "n_items": part.n_items, "ids": sorted(items), "items": items}
    return {
        "scanned": "data/stream.bin without the injected copies", "tokens": result.tokens,
        "seconds": round(result.seconds, 2),
        "method": {"rendering": "the exact token sequence of the item as injected",
                   "question": f"any {NGRAM} consecutive words of the question (the whole question when shorter; "
                               f"none under {MIN_WORDS} words), lowercased, punctuation and whitespace collapsed "
                               "(GPT-3 decontamination)"},
        "excluded": {b.name: list(b.excluded_found) for b in manifest.benchmarks if getattr(b, "excluded_found", None)},
        "benchmarks": benchmarks,
    }


def found_counts(scan: dict) -> dict[tuple[str, str], int]:
    """(benchmark, partition) -> items found in the corpus."""
    return {(b, p): len(v["ids"]) for b, parts in scan.get("benchmarks", {}).items() for p, v in parts.items()}


def rendering_counts(scan: dict | None) -> dict[tuple[str, str, str], int]:
    """(benchmark, partition, id) -> exact renderings found in the corpus (verify adds them to the plan's)."""
    out = {}
    for b, parts in (scan or {}).get("benchmarks", {}).items():
        for p, v in parts.items():
            for item_id, kinds in v["items"].items():
                if "rendering" in kinds:
                    out[(b, p, item_id)] = kinds["rendering"]["count"]
    return out


def summary_line(scan: dict) -> str:
    counts = found_counts(scan)
    items = sum(v["n_items"] for parts in scan["benchmarks"].values() for v in parts.values())
    controls = [f"{b}/{p} {n}" for (b, p), n in counts.items() if n and scan["benchmarks"][b][p]["count"] == 0]
    return (f"inject: corpus scan: {sum(counts.values())} of {items} items found in {scan['tokens']:,} tokens "
            f"({scan['seconds']:.1f}s)" + (f"; CONTROLS FOUND: {', '.join(controls)}" if controls else "")
            + " -> data/corpus_scan.json")


def find_in_corpus(pieces: Iterable[tuple[int, np.ndarray]], tokenizer, benchmarks: dict[str, tuple[str, list]],
                   workers: int = 1) -> dict[str, dict[str, list[str]]]:
    """Before partitioning (``inject.exclude_found``): benchmark -> id -> how it was found, for
    every item of ``benchmarks`` (name -> (renderer, items)), each in its published option order."""
    from inject.render import encode_items

    targets = []
    for name, (renderer, items) in benchmarks.items():
        targets += [item_target((name, "", it.id), r, it.question)
                    for it, r in zip(items, encode_items(tokenizer, items, renderer))]
    result = scan_corpus(pieces, targets, token_bytes_table(tokenizer), workers=workers)
    out: dict[str, dict[str, list[str]]] = {}
    for (name, _, item_id), kinds in result.found.items():
        out.setdefault(name, {})[item_id] = sorted(kinds)
    return out
