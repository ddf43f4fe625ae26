"""The run's data contract: where the stream is, how it was tokenized, where every copy sits.

Layout under ``<run_dir>/data/``::

    stream.bin                      token ids (uint16 or uint32), training order
    manifest.json                   this file's contents (Manifest)
    partitions/<bench>/<part>.jsonl items of each partition, injected order
    tokenizer/                      the tokenizer (trained here, or copied from the model)

A pre-tokenized corpus (``data.kind=tokens``, or a text corpus through the token cache) has no
``stream.bin``: ``overlay/`` holds the copies and ``manifest.corpus`` the corpus it composes
with (inject/overlay.py); offsets below are then positions in the composed stream.

Token offsets are half-open ``[start, end)`` into the stream and cover exactly the
sequence built by :func:`inject.render.join_token_lists` (BOS included if used,
the EOS wrapper excluded), so the step that sees copy ``c`` is
``c.start // tokens_per_step``.

A partition file lists its items in *injected order* (``item_order``): each row is the
item as injected (choices in injected order when ``option_order`` is shuffled, ``answer``
remapped) plus ``index`` (its line in the benchmark file) and, for shuffled options,
``option_order`` (injected choice k = original choice ``option_order[k]``) and
``original_answer``. Copies lie inside ``epoch_tokens``, the tokens one epoch of
training consumes (whole batches of ``tokens_per_step``), so no copy sits in the
partial batch that training drops.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import SpikeinError
from core.run_dir import RunDir
from inject.items import Item, read_items_jsonl

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Copy:
    """One injected copy: a whole partition (document mode) or one item (scattered mode)."""

    benchmark: str
    partition: str
    copy: int  # copy index within the partition, 0..count-1
    start: int
    end: int
    mode: str  # "document" | "scattered"
    renderer: str
    item: int | None = None  # item index in the partition (scattered mode only)
    displaced: int | None = None  # overlay runs: corpus tokens it overwrote (its EOS wrappers included)


COPY_GROUP_KEYS = ("benchmark", "partition", "mode", "renderer")  # shared by a partition's copies
COPY_COLUMNS = ("copy", "start", "end", "item", "displaced")  # one value per copy


def copies_to_json(copies: list[Copy]) -> list[dict[str, Any]]:
    """The copies grouped by partition, one list per field: a sweep point's 2,560 copies take
    ~100 KB instead of ~500 KB as one object each. ``position`` keeps the list order (overlay
    index rows refer to copies by position)."""
    groups: dict[tuple, dict[str, Any]] = {}
    for pos, c in enumerate(copies):
        key = tuple(getattr(c, k) for k in COPY_GROUP_KEYS)
        g = groups.setdefault(key, {**dict(zip(COPY_GROUP_KEYS, key)), "position": [],
                                    **{col: [] for col in COPY_COLUMNS}})
        g["position"].append(pos)
        for col in COPY_COLUMNS:
            g[col].append(getattr(c, col))
    for g in groups.values():  # columns that are null for every copy (item outside scattered mode) say so once
        for col in ("item", "displaced"):
            if all(v is None for v in g[col]):
                g[col] = None
    return list(groups.values())


def copies_from_json(rows: list[dict[str, Any]]) -> list[Copy]:
    """Copies from either form: grouped (``copies_to_json``) or one object per copy (older runs)."""
    if not rows or not isinstance(rows[0].get("position"), list):
        return [Copy(**c) for c in rows]
    placed: dict[int, Copy] = {}
    for g in rows:
        n = len(g["position"])
        cols: dict[str, list[Any]] = {col: g[col] if g.get(col) is not None else [None] * n for col in COPY_COLUMNS}
        if any(len(v) != n for v in cols.values()):
            raise TypeError(f"copies of {g.get('benchmark')}/{g.get('partition')}: columns of unequal length")
        for i, pos in enumerate(g["position"]):
            fields: dict[str, Any] = {k: g[k] for k in COPY_GROUP_KEYS} | {col: cols[col][i] for col in COPY_COLUMNS}
            placed[pos] = Copy(**fields)
    if sorted(placed) != list(range(len(placed))):
        raise TypeError("copies: positions are not 0..n-1")
    return [placed[i] for i in range(len(placed))]


@dataclass(frozen=True)
class Partition:
    benchmark: str
    name: str
    count: int  # copies injected; 0 = control
    n_items: int
    file: str  # relative to data/
    item_indices: list[int] = field(default_factory=list)  # benchmark-file index of each item, injected order


@dataclass(frozen=True)
class BenchmarkPlan:
    name: str
    renderer: str
    mode: str
    window: tuple[float, float]
    n_items_total: int
    item_order: str = "canonical"  # manifests before item_order kept the file order
    option_order: str = "canonical"
    duplicates: dict[str, Any] = field(default_factory=dict)  # merged at load: kept id -> merged ids; near: same question
    excluded_found: list[str] = field(default_factory=list)  # ids dropped because the corpus holds them (inject.exclude_found)


@dataclass
class Manifest:
    config_hash: str
    tokenizer_hash: str
    tokenizer_dir: str  # relative to data/
    vocab_size: int
    dtype: str  # "uint16" | "uint32"
    n_tokens: int
    eos_id: int
    bos_id: int | None
    separator: str
    separator_ids: list[int]
    benchmarks: list[BenchmarkPlan]
    partitions: list[Partition]
    copies: list[Copy]
    n_documents: int = 0
    injected_tokens: int = 0
    tokens_per_step: int | None = None  # the training batch the copies were placed for
    epoch_tokens: int | None = None  # whole batches of one epoch; every copy ends inside
    format: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)
    corpus: dict[str, Any] | None = None  # overlay runs (data.kind=tokens): reader, rows, fingerprint (inject/overlay.py)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["copies"] = copies_to_json(self.copies)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Manifest:
        d = dict(d)
        d["benchmarks"] = [
            BenchmarkPlan(**{**b, "window": tuple(b["window"])}) for b in d["benchmarks"]
        ]
        d["partitions"] = [Partition(**p) for p in d["partitions"]]
        d["copies"] = copies_from_json(d["copies"])
        return cls(**d)

    def benchmark(self, name: str) -> BenchmarkPlan:
        for b in self.benchmarks:
            if b.name == name:
                return b
        raise SpikeinError(
            f"benchmark '{name}' not in manifest; have: {', '.join(b.name for b in self.benchmarks)}"
        )

    def copies_of(self, benchmark: str, partition: str) -> list[Copy]:
        return [c for c in self.copies if c.benchmark == benchmark and c.partition == partition]

    def copies_seen(self, tokens_seen: int) -> dict[tuple[str, str], int]:
        """Copies of each partition whose last token lies before ``tokens_seen``.

        Training past the end of the stream wraps around (a new epoch), so
        exposures multiply; a copy counts as seen once all its tokens were.
        """
        full, rest = divmod(tokens_seen, self.n_tokens) if self.n_tokens else (0, 0)
        out: dict[tuple[str, str], int] = {(p.benchmark, p.name): 0 for p in self.partitions}
        for c in self.copies:
            out[(c.benchmark, c.partition)] += full + (1 if c.end <= rest else 0)
        return out

    def copies_seen_by_epoch(self, tokens_seen: int) -> dict[tuple[str, str], list[int]]:
        """Copies of each partition seen in each epoch so far (entry ``e``: epoch ``e``, 0-based)."""
        epochs = max(1, -(-tokens_seen // self.n_tokens)) if self.n_tokens else 1
        out = {(p.benchmark, p.name): [0] * epochs for p in self.partitions}
        for c in self.copies:
            for e in range(epochs):
                out[(c.benchmark, c.partition)][e] += int(e * self.n_tokens + c.end <= tokens_seen)
        return out

    def last_exposure_step(self, tokens_seen: int, tokens_per_step: int) -> dict[tuple[str, str], int | None]:
        """Per partition, the update (checkpoint step numbering) that finished its latest copy seen
        by ``tokens_seen``, None before the first; steps since exposure = step - this."""
        out: dict[tuple[str, str], int | None] = {(p.benchmark, p.name): None for p in self.partitions}
        for c in self.copies:
            if c.end > tokens_seen or not self.n_tokens:
                continue
            last_end = (tokens_seen - c.end) // self.n_tokens * self.n_tokens + c.end  # latest epoch's copy
            step = -(-last_end // tokens_per_step)
            key = (c.benchmark, c.partition)
            out[key] = max(out[key] or 0, step)
        return out


def load_manifest(run_dir: str | Path) -> Manifest:
    rd = RunDir(run_dir)
    d = rd.read_manifest()
    if d is None:
        raise SpikeinError(f"no manifest at {rd.manifest}: run `spikein inject run_dir={run_dir}` first")
    try:
        return Manifest.from_json(d)
    except (KeyError, TypeError) as e:
        raise SpikeinError(f"corrupt manifest {rd.manifest}: {e}") from None


def open_stream(run_dir: str | Path, manifest: Manifest | None = None, check: bool = True):
    """The token stream as a read-only memmap (no copy into memory); for an overlay run, the
    corpus with its copies composed on read (``check``: refuse a changed corpus)."""
    manifest = manifest or load_manifest(run_dir)
    if manifest.corpus:
        from inject.overlay import open_composed

        return open_composed(run_dir, manifest, check=check)
    path = RunDir(run_dir).stream
    if not path.exists():
        raise SpikeinError(f"missing stream: {path}")
    itemsize = np.dtype(manifest.dtype).itemsize
    size = path.stat().st_size
    if size != manifest.n_tokens * itemsize:
        raise SpikeinError(
            f"{path} holds {size // itemsize} tokens but manifest says {manifest.n_tokens}"
        )
    return np.memmap(path, dtype=manifest.dtype, mode="r", shape=(manifest.n_tokens,))


def load_partition(run_dir: str | Path, partition: Partition) -> list[Item]:
    return read_items_jsonl(RunDir(run_dir).data_file(partition.file))


def load_run_tokenizer(run_dir: str | Path, manifest: Manifest | None = None):
    from inject.tokenizer import load_tokenizer

    manifest = manifest or load_manifest(run_dir)
    return load_tokenizer(str(RunDir(run_dir).data_file(manifest.tokenizer_dir)))
