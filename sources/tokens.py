"""Pre-tokenized corpora as rows of ``sample_length`` tokens, read through memory maps.

A corpus is a list of *segments* (1-D token arrays: one shard, one ``.bin``, one arrow
column); each segment holds ``len // sample_length`` whole rows and rows never cross
segments (as llm.c, OLMo and datatrove read them; a segment's tail shorter than a row is
never trained on). Row ``r`` of the corpus is the ``r``-th row counting segments in order,
or, with an explicit order (OLMo's ``global_indices``), row ``order[r]``. Nothing is read
until a row is asked for.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from core.checks import choices
from core.config import TokenFormat
from core.errors import InputDataError

FORMATS = choices(TokenFormat)


@dataclass
class TokenCorpus:
    """Rows of a pre-tokenized corpus (read-only; arrays are memory maps or arrow views)."""

    format: str
    segments: list[np.ndarray]
    sample_length: int
    dtype: str
    files: list[Path] = field(default_factory=list)  # every file the tokens depend on (fingerprinted)
    order: np.ndarray | None = None  # training row r = stored row order[r]

    def __post_init__(self) -> None:
        per = [len(s) // self.sample_length for s in self.segments]
        self.row_starts = np.concatenate([[0], np.cumsum(per, dtype=np.int64)]).astype(np.int64)
        if self.n_stored_rows == 0:
            raise InputDataError(f"{self.format} corpus {self._where()} holds no whole row of "
                                 f"data.sample_length={self.sample_length} tokens")

    def _where(self) -> str:
        return str(self.files[0]) if self.files else "(no files)"

    @property
    def n_stored_rows(self) -> int:
        return int(self.row_starts[-1])

    @property
    def n_rows(self) -> int:
        """Rows in training order (the order's length, or every stored row)."""
        return len(self.order) if self.order is not None else self.n_stored_rows

    def stored_row(self, r: int) -> int:
        return int(self.order[r]) if self.order is not None else int(r)

    def row(self, r: int) -> np.ndarray:
        """Training row ``r`` (a read-only view; copy before writing into it)."""
        stored = self.stored_row(r)
        if not 0 <= stored < self.n_stored_rows:  # checked here: reading a whole order file to check it is not
            raise InputDataError(f"{self.format} corpus order names row {stored} but the files hold "
                                 f"{self.n_stored_rows} rows of {self.sample_length} tokens")
        seg = int(np.searchsorted(self.row_starts, stored, side="right")) - 1
        start = (stored - int(self.row_starts[seg])) * self.sample_length
        return self.segments[seg][start:start + self.sample_length]

    def rows(self, first: int, count: int) -> np.ndarray:
        """Training rows ``[first, first + count)`` as one ``[count, sample_length]`` array."""
        return np.stack([np.asarray(self.row(r)) for r in range(first, first + count)])

    def sampled_max(self, n_rows: int = 64) -> int:
        """The largest token id in ``n_rows`` evenly spaced rows (a vocabulary check, not a scan)."""
        picks = np.unique(np.linspace(0, self.n_rows - 1, num=min(n_rows, self.n_rows)).astype(np.int64))
        return max(int(np.asarray(self.row(int(r))).max()) for r in picks)


def check_dtype(dtype: str, where: str) -> str:
    if dtype not in ("uint8", "int16", "uint16", "int32", "uint32", "int64"):
        raise InputDataError(f"{where}: token dtype '{dtype}' is not an integer token type "
                             "(uint16, uint32, int32, ...)")
    return dtype


def expand_paths(paths: Sequence[str], suffixes: tuple[str, ...], fmt: str) -> list[Path]:
    """Files named by data.paths: files as given, directories by suffix in sorted order."""
    if not paths:
        raise InputDataError(f"data.paths is empty for data.kind=tokens data.format={fmt}")
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and f.name.endswith(suffixes))
            if not found:
                raise InputDataError(f"data.paths: {p} holds no {' / '.join(suffixes)} file for data.format={fmt}")
            out += found
        elif p.is_file():
            out.append(p)
        else:
            raise InputDataError(f"data.paths: missing file or directory: {p}")
    return out
