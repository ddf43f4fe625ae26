"""The injection plan: seeded disjoint partitions per benchmark, and where copies go."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from inject.errors import SpikeinError
from inject.items import Item
from inject.render import RENDERERS

MODES = ("document", "scattered")


@dataclass(frozen=True)
class PlanSettings:
    """One benchmark's plan (``cfg.inject`` merged with ``benchmarks.<name>.inject``)."""

    counts: tuple[int, ...]
    partition_size: int | None
    partition_fraction: float | None
    mode: str
    renderer: str
    window: tuple[float, float]
    seed: int

    @classmethod
    def from_config(cls, inject: Mapping[str, Any], override: Mapping[str, Any] | None = None):
        merged = {**dict(inject), **dict(override or {})}
        s = cls(
            counts=tuple(int(c) for c in merged["counts"]),
            partition_size=merged.get("partition_size"),
            partition_fraction=merged.get("partition_fraction"),
            mode=str(merged["mode"]),
            renderer=str(merged["renderer"]),
            window=tuple(float(w) for w in merged["window"]),  # type: ignore[arg-type]
            seed=int(merged["seed"]),
        )
        s.validate()
        return s

    def validate(self) -> None:
        if not self.counts:
            raise SpikeinError("inject.counts is empty")
        if any(c < 0 for c in self.counts):
            raise SpikeinError(f"inject.counts must be >= 0, got {list(self.counts)}")
        if self.mode not in MODES:
            raise SpikeinError(f"inject.mode '{self.mode}' unknown; choose one of: {', '.join(MODES)}")
        if self.renderer not in RENDERERS:
            raise SpikeinError(f"inject.renderer '{self.renderer}' unknown; choose one of: {', '.join(RENDERERS)}")
        lo, hi = self.window if len(self.window) == 2 else (-1.0, -1.0)
        if not (0.0 <= lo < hi <= 1.0):
            raise SpikeinError(f"inject.window must be [start, end] with 0 <= start < end <= 1, got {list(self.window)}")
        if (self.partition_size is None) == (self.partition_fraction is None):
            raise SpikeinError("set exactly one of inject.partition_size and inject.partition_fraction")

    def size_for(self, n_items: int, benchmark: str) -> int:
        if self.partition_size is not None:
            size = int(self.partition_size)
        else:
            size = int(float(self.partition_fraction) * n_items)  # type: ignore[arg-type]
        if size < 1:
            raise SpikeinError(f"benchmark {benchmark}: partition size {size} < 1")
        if size * len(self.counts) > n_items:
            raise SpikeinError(
                f"benchmark {benchmark}: {len(self.counts)} partitions of {size} items need "
                f"{size * len(self.counts)} items but it has {n_items} (inject.partition_size)"
            )
        return size


@dataclass(frozen=True)
class PlannedPartition:
    benchmark: str
    name: str
    count: int
    items: tuple[Item, ...]  # canonical order


def partition_names(counts: Sequence[int]) -> list[str]:
    """``x<count>``, with ``_<k>`` appended when a count repeats (``x0``, ``x0_1``)."""
    seen: dict[int, int] = {}
    names = []
    for c in counts:
        k = seen.get(c, 0)
        seen[c] = k + 1
        names.append(f"x{c}" if k == 0 else f"x{c}_{k}")
    return names


def seed_for(seed: int, *keys: str) -> int:
    """A stable per-purpose seed (Python's hash() is salted per process)."""
    digest = hashlib.sha256("/".join([str(seed), *keys]).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def make_partitions(benchmark: str, items: Sequence[Item], s: PlanSettings) -> list[PlannedPartition]:
    """Disjoint seeded partitions; each keeps its items in canonical order."""
    size = s.size_for(len(items), benchmark)
    order = np.random.default_rng(seed_for(s.seed, "partition", benchmark)).permutation(len(items))
    parts = []
    for k, (name, count) in enumerate(zip(partition_names(s.counts), s.counts)):
        chosen = np.sort(order[k * size : (k + 1) * size])
        parts.append(PlannedPartition(benchmark, name, count, tuple(items[i] for i in chosen)))
    return parts


@dataclass(frozen=True)
class PlannedCopy:
    """A copy to insert: its tokens, bookkeeping, and where (a fraction of the stream)."""

    benchmark: str
    partition: str
    copy: int
    item: int | None
    tokens: tuple[int, ...]
    target: float  # fraction of the final stream where it should start


def place_copies(
    copies: Sequence[PlannedCopy], doc_lengths: np.ndarray, eos_wrap: int
) -> list[list[PlannedCopy]]:
    """Assign each copy to a document boundary so it starts near ``target * stream length``.

    Returns ``slots`` with ``slots[k]`` = copies inserted before document ``k``
    (``k == len(doc_lengths)``: after the last). Boundaries are chosen greedily in
    target order, accounting for copies already inserted, so positions are exact
    fractions of the final stream up to one document.
    """
    n_docs = len(doc_lengths)
    corpus = int(doc_lengths.sum())
    injected = sum(len(c.tokens) + eos_wrap for c in copies)
    total = corpus + injected
    starts = np.concatenate([[0], np.cumsum(doc_lengths)])  # corpus offset of each boundary
    slots: list[list[PlannedCopy]] = [[] for _ in range(n_docs + 1)]
    inserted = 0
    k = 0
    for c in sorted(copies, key=lambda c: c.target):
        want = c.target * total
        # the first boundary whose final position reaches the target
        k = max(k, int(np.searchsorted(starts, want - inserted, side="left")))
        k = min(k, n_docs)
        slots[k].append(c)
        inserted += len(c.tokens) + eos_wrap
    return slots
