"""Has the corpus changed since a run was built on it? Sizes and hashes, never a full scan.

A file up to ``WHOLE_BYTES`` is hashed whole (small corpora, every index); a larger one by
``BLOCKS`` evenly spaced blocks of ``BLOCK_BYTES`` (its first and last included), so checking
a 40 GB corpus reads a few MiB. The rows that hold copies are hashed too: the tokens around
every copy are exactly what the run was planned on.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from core.errors import CorruptOutputError, InputDataError
from sources.tokens import TokenCorpus

WHOLE_BYTES = 64 << 20
BLOCK_BYTES = 1 << 16
BLOCKS = 64


def file_digest(path: Path) -> str:
    size = path.stat().st_size
    h = hashlib.sha256()
    with path.open("rb") as f:
        if size <= WHOLE_BYTES:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
        else:
            for off in np.linspace(0, size - BLOCK_BYTES, num=BLOCKS).astype(np.int64):
                f.seek(int(off))
                h.update(f.read(BLOCK_BYTES))
    return h.hexdigest()


def rows_digest(corpus: TokenCorpus, rows: Iterable[int]) -> str:
    h = hashlib.sha256()
    for r in sorted(set(int(r) for r in rows)):
        h.update(np.ascontiguousarray(corpus.row(r)).tobytes())
    return h.hexdigest()


def fingerprint(corpus: TokenCorpus, rows: Iterable[int]) -> dict[str, Any]:
    return {"files": [{"path": str(f), "size": f.stat().st_size, "sha256": file_digest(f)} for f in corpus.files],
            "rows_sha256": rows_digest(corpus, rows)}


def check_fingerprint(recorded: dict[str, Any], corpus: TokenCorpus, rows: Iterable[int]) -> None:
    """Raise one line naming the first file (or the copies' rows) that differs from ``recorded``."""
    now = {str(f) for f in corpus.files}
    for entry in recorded["files"]:
        path = Path(entry["path"])
        if entry["path"] not in now or not path.is_file():
            raise CorruptOutputError(f"corpus file {path} is gone or no longer part of the corpus; "
                                     "the run was built on it (rebuild with overwrite=true)")
        if path.stat().st_size != entry["size"] or file_digest(path) != entry["sha256"]:
            raise CorruptOutputError(f"corpus file {path} changed since the run's data was built "
                                     "(fingerprint mismatch); rebuild with overwrite=true")
    if len(now) != len(recorded["files"]):
        raise CorruptOutputError("the corpus has other files than when the run's data was built; rebuild with overwrite=true")
    if rows_digest(corpus, rows) != recorded["rows_sha256"]:
        raise CorruptOutputError("the corpus rows holding copies changed since the run's data was built "
                                 "(fingerprint mismatch); rebuild with overwrite=true")


def check_vocabulary(corpus: TokenCorpus, vocab: int) -> None:
    """A corpus tokenized with another tokenizer: its type or ids do not fit this vocabulary."""
    info = np.iinfo(np.dtype(corpus.dtype))
    if vocab > info.max + 1:
        raise InputDataError(f"corpus tokens are {corpus.dtype} (ids up to {info.max}) but the tokenizer has "
                             f"{vocab} tokens: the corpus was tokenized with another tokenizer (model.tokenizer?)")
    top = corpus.sampled_max()
    if top >= vocab:
        raise InputDataError(f"corpus token id {top} is outside the tokenizer's {vocab}-token vocabulary: "
                             "the corpus was tokenized with another tokenizer (model.tokenizer?)")
