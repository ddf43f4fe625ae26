"""The injection plan: seeded disjoint partitions per benchmark, and where copies go."""
from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from core.config import InjectConfig
from core.errors import SpikeinError
from inject.items import Item, permute_choices
from inject.render import RENDERERS

MODES = ("document", "scattered")
ORDERS = ("shuffled", "canonical")
# Renderers that print the options in the item's order (raw prints the original record).
OPTION_RENDERERS = ("mcq", "mcq_noanswer", "cloze")


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
    item_order: str  # shuffled: each partition injected in a seeded random order (defaults: core/config.py)
    option_order: str  # shuffled: each item's choices permuted by a seeded order

    @classmethod
    def from_config(cls, inject: InjectConfig | Mapping[str, Any], override: Mapping[str, Any] | None = None):
        base = dataclasses.asdict(inject) if isinstance(inject, InjectConfig) else dict(inject)
        merged = {**base, **dict(override or {})}
        s = cls(
            counts=tuple(int(c) for c in merged["counts"]),
            partition_size=merged["partition_size"],
            partition_fraction=merged["partition_fraction"],
            mode=str(merged["mode"]),
            renderer=str(merged["renderer"]),
            window=tuple(float(w) for w in merged["window"]),  # type: ignore[arg-type]
            seed=int(merged["seed"]),
            item_order=str(merged["item_order"]),
            option_order=str(merged["option_order"]),
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
        for key, value in (("item_order", self.item_order), ("option_order", self.option_order)):
            if value not in ORDERS:
                raise SpikeinError(f"inject.{key} '{value}' unknown; choose one of: {', '.join(ORDERS)}")
        if self.option_order == "shuffled" and self.renderer not in OPTION_RENDERERS:
            raise SpikeinError(f"inject.option_order=shuffled needs a renderer that prints the options "
                               f"({', '.join(OPTION_RENDERERS)}); inject.renderer={self.renderer} injects the original record")
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
    items: tuple[Item, ...]  # injected order, each item with its options in injected order
    indices: tuple[int, ...] = ()  # each item's index in the benchmark file
    option_orders: tuple[tuple[int, ...], ...] | None = None  # injected choice k = original choice order[k]

    def rows(self) -> list[dict]:
        """The partition file's rows, in injected order (the audit reads them in file order)."""
        rows = []
        for k, it in enumerate(self.items):
            extra: dict = {"partition": self.name, "count": self.count}
            if self.indices:
                extra["index"] = self.indices[k]
            if self.option_orders is not None:
                order = self.option_orders[k]
                extra.update(option_order=list(order), original_answer=order[it.answer])
            rows.append(it.to_json(**extra))
        return rows


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
    """Disjoint seeded partitions, each in its injected order (``item_order``, ``option_order``).

    A controlled run chooses the order it injects, so order tests have an exact null
    whatever the file's own order (MMLU is sorted by subject). Controls are permuted
    the same way: their injected order is a random order the model never saw.
    """
    size = s.size_for(len(items), benchmark)
    order = np.random.default_rng(seed_for(s.seed, "partition", benchmark)).permutation(len(items))
    parts = []
    for k, (name, count) in enumerate(zip(partition_names(s.counts), s.counts)):
        chosen = np.sort(order[k * size : (k + 1) * size])
        if s.item_order == "shuffled":
            chosen = np.random.default_rng(seed_for(s.seed, "item_order", benchmark, name)).permutation(chosen)
        indices = tuple(int(i) for i in chosen)
        parts.append(_injected_partition(benchmark, name, count, [items[i] for i in indices], indices, s))
    return parts


def option_order_for(seed: int, benchmark: str, index: int, n_choices: int) -> tuple[int, ...]:
    """The seeded order item ``index`` of ``benchmark`` injects its choices in."""
    rng = np.random.default_rng(seed_for(seed, "option_order", benchmark, str(index)))
    return tuple(int(i) for i in rng.permutation(n_choices))


def _injected_partition(benchmark: str, name: str, count: int, items: list[Item], indices: tuple[int, ...],
                        s: PlanSettings) -> PlannedPartition:
    if s.option_order != "shuffled":
        return PlannedPartition(benchmark, name, count, tuple(items), indices)
    orders = tuple(option_order_for(s.seed, benchmark, i, len(it.choices)) for i, it in zip(indices, items))
    permuted = tuple(permute_choices(it, o) for it, o in zip(items, orders))
    return PlannedPartition(benchmark, name, count, permuted, indices, orders)


@dataclass(frozen=True)
class PlannedCopy:
    """A copy to insert: its tokens, bookkeeping, and where (a fraction of the stream)."""

    benchmark: str
    partition: str
    copy: int
    item: int | None
    tokens: tuple[int, ...]
    target: float  # fraction of the final stream where it should start


def epoch_tokens(stream_tokens: int, tokens_per_step: int | None) -> int:
    """The tokens one epoch of training consumes: whole batches (the partial last one is dropped)."""
    if not tokens_per_step:
        return stream_tokens
    return stream_tokens // tokens_per_step * tokens_per_step


def place_copies(
    copies: Sequence[PlannedCopy], doc_lengths: np.ndarray, eos_wrap: int, tokens_per_step: int | None = None
) -> list[list[PlannedCopy]]:
    """Assign each copy to a document boundary so it starts near ``target * epoch tokens``.

    Returns ``slots`` with ``slots[k]`` = copies inserted before document ``k``
    (``k == len(doc_lengths)``: after the last). Boundaries are chosen greedily in
    target order, accounting for copies already inserted, so positions are exact
    fractions of the final stream up to one document. Targets are fractions of the
    tokens training consumes in one epoch (whole batches of ``tokens_per_step``), and
    every copy, its EOS wrapper included, ends inside them: none lands in the dropped
    partial batch (copies aimed past the last boundary that allows it stack there).
    """
    injected = sum(len(c.tokens) + eos_wrap for c in copies)
    limit = epoch_tokens(int(doc_lengths.sum()) + injected, tokens_per_step)
    starts = np.concatenate([[0], np.cumsum(doc_lengths)])  # corpus offset of each boundary
    # the last boundary after which every copy still ends inside the consumed tokens
    last = int(np.searchsorted(starts, limit - injected, side="right")) - 1
    if last < 0:
        raise SpikeinError(f"the copies ({injected:,} tokens) do not fit in the {limit:,} tokens one epoch "
                           "trains on; lower inject.counts or partition_size, or add corpus")
    slots: list[list[PlannedCopy]] = [[] for _ in range(len(doc_lengths) + 1)]
    inserted = 0
    k = 0
    for c in sorted(copies, key=lambda c: c.target):
        # the first boundary whose final position reaches the target
        k = max(k, int(np.searchsorted(starts, c.target * limit - inserted, side="left")))
        k = min(k, last)
        slots[k].append(c)
        inserted += len(c.tokens) + eos_wrap
    return slots


def untrained_copies(copies: Sequence[Any], consumed_tokens: int, epoch: int) -> str | None:
    """Why some copies would never be trained on (they end past ``consumed_tokens``), or None.

    ``copies`` need only an ``end`` offset; ``epoch`` is the whole-batch tokens of one
    epoch that windows are fractions of, so the message can say which window fits.
    """
    late = [c for c in copies if c.end > consumed_tokens]
    if not late:
        return None
    fits = consumed_tokens / max(epoch, 1)
    return (f"{len(late)} of {len(copies)} copies lie past the {consumed_tokens:,} tokens training consumes "
            f"(train.max_steps / train.max_tokens) and would never be trained on; end inject.window "
            f"by {fits:.3f}, train longer, or set inject.allow_untrained_copies=true")
