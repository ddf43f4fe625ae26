"""Check a built stream against its manifest, token for token.

Two independent checks: every recorded copy holds exactly the tokens the
renderer produces for its items (and sits between document boundaries), and
every benchmark item's token sequence occurs in the stream exactly ``count``
times, which also proves that control items (count 0) never appear.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from core.config import SpikeinConfig
from core.errors import SpikeinError
from core.progress import show_bars
from inject.manifest import Manifest, load_manifest, load_partition, load_run_tokenizer, open_stream
from inject.render import encode_items, join_token_lists


def copy_tokens(manifest: Manifest, token_lists: Sequence[Sequence[int]], item: int | None) -> list[int]:
    """The exact tokens of one copy: the whole partition, or one item in scattered mode."""
    lists = token_lists if item is None else [token_lists[item]]
    return join_token_lists(lists, manifest.separator_ids, manifest.bos_id)


def count_occurrences(stream: np.ndarray, pattern: Sequence[int], first_positions: np.ndarray) -> int:
    """Occurrences of ``pattern`` in ``stream``, given the positions of its first token."""
    pos = first_positions[first_positions + len(pattern) <= len(stream)]
    for j, tok in enumerate(pattern[1:], 1):
        if pos.size == 0:
            break
        pos = pos[stream[pos + j] == tok]
    return int(pos.size)


def verify_run_data(data_root: str | Path, manifest: Manifest | None = None) -> dict[str, int]:
    """Raise SpikeinError naming the first broken copy or item; return summary counts."""
    run_dir = Path(data_root)
    manifest = manifest or load_manifest(run_dir)
    stream = open_stream(run_dir, manifest)
    tokenizer = load_run_tokenizer(run_dir, manifest)
    in_corpus = _corpus_renderings(run_dir)
    per_partition = defaultdict(list)
    for c in manifest.copies:
        per_partition[(c.benchmark, c.partition)].append(c)
    item_patterns: list[tuple[str, list[int], int, int | None]] = []
    for part in tqdm(manifest.partitions, desc="verify: copies", unit=" partition", mininterval=2.0,
                     disable=not show_bars()):
        plan = manifest.benchmark(part.benchmark)
        items = load_partition(run_dir, part)
        if len(items) != part.n_items:
            raise SpikeinError(f"partition {part.benchmark}/{part.name}: file has {len(items)} items, manifest {part.n_items}")
        lists = encode_items(tokenizer, items, plan.renderer)
        copies = per_partition.get((part.benchmark, part.name), [])
        expected = part.count * (len(items) if plan.mode == "scattered" else 1)
        if len(copies) != expected:
            raise SpikeinError(f"partition {part.benchmark}/{part.name}: {len(copies)} copies recorded, plan says {expected}")
        for c in copies:
            _check_copy(stream, manifest, c, copy_tokens(manifest, lists, c.item))
        for it, toks in zip(items, lists):
            found = None if in_corpus is None else in_corpus.get((part.benchmark, part.name, it.id), 0)
            item_patterns.append((f"{part.benchmark}/{part.name} item {it.id}", list(toks), part.count, found))
    if manifest.corpus is None:  # a corpus + overlay is not scanned whole here (its fingerprint was checked)
        _check_item_counts(stream, item_patterns)
    else:
        _check_overlay(stream, manifest)
    return {"copies": len(manifest.copies), "items": len(item_patterns), "tokens": manifest.n_tokens}


def _check_copy(stream: np.ndarray, manifest: Manifest, c, expected: list[int]) -> None:
    where = f"copy {c.copy} of {c.benchmark}/{c.partition}" + (f" item {c.item}" if c.item is not None else "")
    got = np.asarray(stream[c.start : c.end])
    if c.end - c.start != len(expected) or not np.array_equal(got, expected):
        bad = int(np.argmax(got[: len(expected)] != np.asarray(expected[: len(got)]))) if len(got) else 0
        raise SpikeinError(f"{where} at tokens [{c.start}, {c.end}) differs from its items (first mismatch at +{bad})")
    before_ok = c.start == 0 or stream[c.start - 1] == manifest.eos_id
    after_ok = c.end < len(stream) and stream[c.end] == manifest.eos_id
    if not (before_ok and after_ok):
        raise SpikeinError(f"{where} at tokens [{c.start}, {c.end}) is not wrapped in EOS")


def _check_overlay(stream, manifest: Manifest) -> None:
    """Every copy inside one training sample, its wrappers included, and no two overlapping."""
    assert manifest.corpus is not None  # only overlay runs come here
    length = int(manifest.corpus["sample_length"])
    spans = sorted((c.start - 1, c.end + 1, c) for c in manifest.copies)
    for (a, b, c), nxt in zip(spans, spans[1:] + [(None, None, None)]):
        if a // length != (b - 1) // length:
            raise SpikeinError(f"copy {c.copy} of {c.benchmark}/{c.partition} at [{c.start}, {c.end}) crosses a "
                               f"{length}-token training sample")
        if nxt[0] is not None and nxt[0] < b:
            raise SpikeinError(f"copies of {c.benchmark}/{c.partition} and {nxt[2].benchmark}/{nxt[2].partition} "
                               f"overlap at token {nxt[0]}")


def _corpus_renderings(run_dir: Path) -> dict[tuple[str, str, str], int] | None:
    """Exact renderings the corpus scan found outside the copies (None: no scan recorded)."""
    from core.run_dir import RunDir
    from inject.corpus_scan import rendering_counts

    scan = RunDir(run_dir).read_corpus_scan()
    return None if scan is None else rendering_counts(scan)


def _check_item_counts(stream: np.ndarray, patterns: list[tuple[str, list[int], int, int | None]]) -> None:
    """Each item's rendering occurs as often as it was injected plus the times the corpus
    scan found it in the corpus text (``None``: not scanned, counted as 0)."""
    by_first: dict[int, list[tuple[str, list[int], int, int | None]]] = defaultdict(list)
    same: dict[tuple[int, ...], list[tuple[str, int]]] = defaultdict(list)
    for p in patterns:
        by_first[p[1][0]].append(p)
        same[tuple(p[1])].append((p[0], p[2]))
    for first, group in tqdm(by_first.items(), desc="verify: item occurrences", unit=" group", mininterval=2.0,
                               disable=not show_bars()):
        positions = np.flatnonzero(stream == first)
        for name, toks, count, in_corpus in group:
            n = count_occurrences(stream, toks, positions)
            if n != count + (in_corpus or 0):
                kind = "control item" if count == 0 else "item"
                twins = [(other, c) for other, c in same[tuple(toks)] if other != name]
                raise SpikeinError(f"{kind} {name} occurs {n} times in the stream, expected {count}"
                                   + _cause(twins, in_corpus))


def _cause(twins: list[tuple[str, int]], in_corpus: int | None) -> str:
    """Why an item's count is off, as far as verify can tell."""
    if twins:
        named = ", ".join(f"{other} (injected {c} times)" for other, c in twins)
        return (f": it renders exactly as {named}, the same item twice in the benchmark file "
                "(exact duplicates are merged at load: same question and choices after whitespace normalisation)")
    if in_corpus is None:
        return ": no data/corpus_scan.json to say whether the corpus holds it (rebuild with overwrite=true)"
    if in_corpus:
        return f" ({in_corpus} in the corpus text per data/corpus_scan.json): the stream differs from its plan"
    return ": data/corpus_scan.json found it nowhere in the corpus text, so the stream differs from its plan"


def run_verify(cfg: SpikeinConfig) -> int:
    from core.run_dir import RunDir

    summary = verify_run_data(Path(cfg.run_dir))
    manifest = load_manifest(Path(cfg.run_dir))
    where = (f"the {manifest.corpus['format']} corpus + overlay, fingerprint unchanged" if manifest.corpus
             else str(RunDir(cfg.run_dir).stream))
    print(f"verify: ok ({summary['copies']} copies, {summary['items']} items, "
          f"{summary['tokens']:,} tokens in {where})")
    return 0
