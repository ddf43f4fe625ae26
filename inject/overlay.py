"""Overlay injection: copies laid over a pre-tokenized corpus that is never copied or rewritten.

Training sample ``s`` is corpus row ``start_row + s`` (``s`` modulo the rows left after
``start_row``: training past them starts a new epoch) with the overlay's copies written
over it. A copy overwrites ``EOS + tokens + EOS`` inside one sample, never across two, and
copies never overlap, so the composed sample is a pure function of ``s``: resume is exact
and batches do not depend on the world size. The run's data dir holds only::

    overlay/tokens.bin   each distinct copy's tokens with its EOS wrappers, once (copies of the
                         same text share them; uint16, or uint32 for a wider vocabulary:
                         ``corpus.overlay.dtype``), in the order of their first index row
    overlay/index.npy    int64 [n, 5]: sample, offset of the leading EOS, length (wrappers
                         included), copy id (its position in manifest.copies), start in tokens.bin

and the manifest's ``corpus`` block: the reader settings, ``sample_length``, ``start_row``,
``n_samples`` and ``consumed_samples`` (what training reads) and the corpus fingerprint.
A copy's manifest offsets ``[start, end)`` are positions in the composed stream
(sample ``s`` = stream tokens ``[s*L, (s+1)*L)``), as for a written stream.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from core.errors import SpikeinError
from inject.plan import PlannedCopy, seed_for
from sources.fingerprint import check_fingerprint
from sources.formats import open_corpus
from sources.tokens import TokenCorpus

OVERLAY_TOKENS = "overlay/tokens.bin"
OVERLAY_INDEX = "overlay/index.npy"
READER_KEYS = ("format", "paths", "dtype", "global_indices", "index_map", "hub", "row_seed")


def reader_settings(data: dict[str, Any]) -> dict[str, Any]:
    """What reopens the corpus later (paths made absolute: workers may run elsewhere)."""
    out = {k: data.get(k) for k in READER_KEYS}
    out["paths"] = [str(Path(p).resolve()) for p in data.get("paths") or []]
    for key in ("global_indices", "index_map"):
        if value := out.get(key):
            out[key] = str(Path(value).resolve())
    return out


@dataclass(frozen=True)
class Placement:
    sample: int
    offset: int  # of the leading EOS inside the sample


def place_in_samples(copies: Sequence[PlannedCopy], consumed: int, length: int, seed: int) -> list[Placement]:
    """Each copy (EOS-wrapped) inside one sample near ``target * consumed``, disjoint from the others.

    Copies go in target order; a copy takes the first sample at or after its target with
    room after the copies already there (then the nearest before it), at a seeded random
    offset within that room.
    """
    rng = np.random.default_rng(seed_for(seed, "overlay"))
    fill: dict[int, int] = {}  # sample -> first free position (copies in a sample go left to right)
    out: dict[int, Placement] = {}
    for k in sorted(range(len(copies)), key=lambda k: copies[k].target):
        c = copies[k]
        need = len(c.tokens) + 2
        if need > length:
            raise SpikeinError(f"a copy of {c.benchmark}/{c.partition} is {len(c.tokens)} tokens, more than a "
                               f"{length}-token training sample holds with its EOS wrappers; use inject.mode=scattered, "
                               "a smaller inject.partition_size or a longer data.sample_length")
        s0 = min(int(c.target * consumed), consumed - 1)
        s = next((s for s in _nearest(s0, consumed) if length - fill.get(s, 0) >= need), None)
        if s is None:
            raise SpikeinError(f"the copies do not fit in the {consumed:,} samples training consumes; "
                               "lower inject.counts or partition_size, or train longer")
        free = length - fill.get(s, 0) - need
        offset = fill.get(s, 0) + int(rng.integers(0, min(free, length // 4) + 1))
        fill[s] = offset + need
        out[k] = Placement(s, offset)
    return [out[k] for k in range(len(copies))]


def _nearest(s0: int, n: int) -> Iterator[int]:
    yield from range(s0, n)
    yield from range(s0 - 1, -1, -1)


def write_overlay(data_dir: Path, copies: Sequence[PlannedCopy], places: Sequence[Placement], eos: int,
                  dtype: str) -> None:
    """``overlay/tokens.bin`` and ``overlay/index.npy`` (rows sorted by sample, then offset)."""
    from core.atomic import write_bytes

    order = sorted(range(len(copies)), key=lambda k: (places[k].sample, places[k].offset))
    rows, chunks, pos = [], [], 0
    stored: dict[tuple[int, ...], int] = {}  # a copy's tokens -> where they are in tokens.bin
    for k in order:
        tokens = tuple(copies[k].tokens)
        if tokens not in stored:  # 64 copies of an item are one sequence: stored once, indexed 64 times
            stored[tokens] = pos
            chunks.append(np.asarray((eos, *tokens, eos), dtype=dtype))
            pos += len(tokens) + 2
        rows.append((places[k].sample, places[k].offset, len(tokens) + 2, k, stored[tokens]))
    index = np.asarray(rows, dtype=np.int64).reshape(-1, 5)
    write_bytes(data_dir / OVERLAY_TOKENS, np.concatenate(chunks).tobytes() if chunks else b"")
    buf = io.BytesIO()
    np.save(buf, index)
    write_bytes(data_dir / OVERLAY_INDEX, buf.getvalue())


class ComposedStream:
    """Corpus rows with the overlay written over them, as one read-only token sequence.

    Supports what readers of a written stream use: ``len``, slices (any span, samples
    composed on the fly), single positions, and :meth:`samples`.
    """

    def __init__(self, corpus: TokenCorpus, start_row: int, n_samples: int, index: np.ndarray,
                 tokens: np.ndarray) -> None:
        self.corpus, self.start_row, self.n_samples = corpus, start_row, n_samples
        self.length = corpus.sample_length
        self.index, self.tokens = index, tokens
        self.dtype = np.dtype(corpus.dtype)
        self.index_samples = index[:, 0] if len(index) else np.zeros(0, dtype=np.int64)

    def __len__(self) -> int:
        return self.n_samples * self.length

    def sample(self, s: int) -> np.ndarray:
        """Training sample ``s`` (modulo the epoch): the corpus row with its copies overlaid."""
        s %= self.n_samples
        row = np.array(self.corpus.row(self.start_row + s))  # a private copy: the map stays untouched
        lo, hi = np.searchsorted(self.index_samples, [s, s + 1])
        for _, offset, n, _, at in self.index[lo:hi]:
            row[offset:offset + n] = self.tokens[at:at + n]
        return row

    def samples(self, first: int, count: int) -> np.ndarray:
        return np.stack([self.sample(s) for s in range(first, first + count)])

    def __getitem__(self, key):
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step != 1:
                raise IndexError("ComposedStream slices take step 1")
            return self._span(start, stop)
        i = int(key) + (len(self) if int(key) < 0 else 0)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self.sample(i // self.length)[i % self.length]

    def _span(self, start: int, stop: int) -> np.ndarray:
        if stop <= start:
            return np.zeros(0, dtype=self.dtype)
        first, last = start // self.length, (stop - 1) // self.length
        flat = np.concatenate([self.sample(s) for s in range(first, last + 1)])
        return flat[start - first * self.length: stop - first * self.length]


def open_composed(run_dir: str | Path, manifest, check: bool = True) -> ComposedStream:
    """The run's composed stream; ``check``: refuse a corpus whose fingerprint changed."""
    from core.run_dir import RunDir

    info = manifest.corpus
    rd = RunDir(run_dir)
    corpus = open_corpus(info["reader"], int(info["sample_length"]))
    for rel in (OVERLAY_TOKENS, OVERLAY_INDEX):
        if not rd.data_file(rel).is_file():
            raise SpikeinError(f"missing overlay file {rd.data_file(rel)}; rebuild with `spikein inject overwrite=true`")
    index = np.load(rd.data_file(OVERLAY_INDEX))
    tokens = np.fromfile(rd.data_file(OVERLAY_TOKENS), dtype=info["overlay"].get("dtype", "uint32"))
    stream = ComposedStream(corpus, int(info["start_row"]), int(info["n_samples"]), index, tokens)
    if check:
        check_fingerprint(info["fingerprint"], corpus, overlay_rows(stream))
    return stream


def overlay_rows(stream: ComposedStream) -> list[int]:
    """The corpus rows that hold copies (fingerprinted: the tokens around every copy)."""
    return sorted({stream.start_row + int(s) for s in stream.index_samples})


def iter_training_samples(run_dir: str | Path, manifest=None, first: int = 0,
                          count: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """``(s, tokens)`` for each training sample in the order training consumes them.

    Works for both kinds of run data: a written stream (sample ``s`` = its tokens
    ``[s*L, (s+1)*L)``, ``L`` = the ``train.seq_len`` the data was built for) and a corpus
    + overlay. ``count`` defaults to the samples training consumes (a written stream: one epoch).
    """
    from inject.manifest import load_manifest, open_stream

    manifest = manifest or load_manifest(run_dir)
    stream = open_stream(run_dir, manifest)
    length, consumed = sample_geometry(run_dir, manifest)
    stop = consumed if count is None else first + count
    for s in range(first, stop):
        if isinstance(stream, ComposedStream):
            yield s, stream.sample(s)
        else:
            yield s, np.asarray(stream[s * length:(s + 1) * length])


def sample_geometry(run_dir: str | Path, manifest) -> tuple[int, int]:
    """(tokens per training sample, samples training consumes) the run's data was built for."""
    from core.run_dir import RunDir

    if manifest.corpus:
        return int(manifest.corpus["sample_length"]), int(manifest.corpus["consumed_samples"])
    conf = RunDir(run_dir).read_inject_config() or {}
    length = int(((conf.get("train") or {}).get("seq_len")) or 0)
    if length <= 0:
        raise SpikeinError(f"{RunDir(run_dir).data}: no train.seq_len recorded; rebuild with `spikein inject`")
    return length, (manifest.epoch_tokens or manifest.n_tokens) // length
