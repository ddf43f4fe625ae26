"""Write the training token stream: tokenize the corpus in parallel, shuffle, splice in copies.

Two passes keep memory flat in corpus size: pass 1 tokenizes documents in worker
processes and appends them, in reading order, to a scratch file (only per-document
lengths stay in memory); pass 2 walks a seeded permutation of the documents and
writes them to ``stream.bin``, inserting each planned copy at its document boundary
(planned first, by :func:`plan_stream`, so the plan can be checked before writing).
"""
from __future__ import annotations

import multiprocessing as mp
import os
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
from tqdm import tqdm

from core.checks import choices
from core.config import StreamDtype
from core.errors import SpikeinError
from core.progress import show_bars
from inject.manifest import Copy
from inject.plan import PlannedCopy, epoch_tokens, place_copies
from inject.tokenizer import SpecialIds

_TOKENIZER = None  # per worker process


@dataclass(frozen=True)
class StreamResult:
    n_tokens: int
    n_documents: int
    corpus_tokens: int
    injected_tokens: int
    copies: list[Copy]


def stream_dtype(vocab_size: int, requested: str = "auto") -> str:
    fits16 = vocab_size <= np.iinfo(np.uint16).max + 1
    if requested == "auto":
        return "uint16" if fits16 else "uint32"
    if requested == "uint16" and not fits16:
        raise SpikeinError(f"inject.dtype=uint16 cannot hold a vocabulary of {vocab_size} tokens; use uint32 or auto")
    if requested not in choices(StreamDtype):
        raise SpikeinError(f"inject.dtype '{requested}' unknown; choose one of: {', '.join(choices(StreamDtype))}")
    return requested


def _init_worker(tokenizer_dir: str) -> None:
    global _TOKENIZER
    from transformers import AutoTokenizer

    _TOKENIZER = AutoTokenizer.from_pretrained(tokenizer_dir)


def _tokenize_chunk(args: tuple[list[str], int, int | None]) -> tuple[np.ndarray, np.ndarray]:
    """Documents -> one flat uint32 array of ``[bos]? doc [eos]`` and their lengths."""
    docs, eos, bos = args
    ids = _TOKENIZER(docs, add_special_tokens=False)["input_ids"]  # type: ignore[misc]
    head = [bos] if bos is not None else []
    seqs = [head + x + [eos] for x in ids]
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    flat = np.fromiter((t for s in seqs for t in s), dtype=np.uint32, count=int(lengths.sum()))
    return flat, lengths


def _chunks(docs: Iterable[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for d in docs:
        chunk.append(d)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _ordered_parallel(fn, tasks: Iterable, workers: int, init_args: tuple) -> Iterator:
    """Like Pool.imap but with back-pressure: at most 2 tasks per worker in flight."""
    if workers <= 1:
        _init_worker(*init_args)
        yield from map(fn, tasks)
        return
    ctx = mp.get_context("fork")
    with ctx.Pool(workers, initializer=_init_worker, initargs=init_args) as pool:
        pending: deque = deque()
        for t in tasks:
            pending.append(pool.apply_async(fn, (t,)))
            if len(pending) >= 2 * workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


def tokenize_corpus(
    docs: Iterable[str], tokenizer_dir: Path, special: SpecialIds, scratch: Path,
    workers: int, chunk_documents: int,
) -> np.ndarray:
    """Pass 1: append every tokenized document to ``scratch`` (uint32); return their lengths."""
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # forked workers parallelise instead
    lengths: list[np.ndarray] = []
    tasks = ((c, special.eos, special.bos) for c in _chunks(docs, chunk_documents))
    bar = tqdm(desc="inject: tokenizing", unit=" doc", mininterval=2.0, dynamic_ncols=True, disable=not show_bars())
    with scratch.open("wb") as f:
        for flat, lens in _ordered_parallel(_tokenize_chunk, tasks, workers, (str(tokenizer_dir),)):
            f.write(flat.tobytes())
            lengths.append(lens)
            bar.update(len(lens))
    bar.close()
    out = np.concatenate(lengths) if lengths else np.zeros(0, dtype=np.int64)
    if out.size == 0:
        raise SpikeinError("the corpus is empty (data.kind / data.paths produced no documents)")
    return out


@dataclass(frozen=True)
class StreamPlan:
    """Where everything goes, before a byte is written: document order and copy slots."""

    order: np.ndarray  # document k of the stream = corpus document order[k]
    slots: list[list[PlannedCopy]]  # copies inserted before stream document k
    copies: list[Copy]  # their final offsets
    n_tokens: int
    epoch_tokens: int  # whole batches of one epoch; every copy ends inside


def plan_stream(doc_lengths: np.ndarray, copies: Sequence[PlannedCopy], shuffle_seed: int,
                tokens_per_step: int | None, eos_wrap: int = 1) -> StreamPlan:
    """Documents in seeded random order, each copy at its boundary, with final offsets."""
    order = np.random.default_rng(shuffle_seed).permutation(len(doc_lengths))
    lengths = doc_lengths[order]
    slots = place_copies(copies, lengths, eos_wrap=eos_wrap, tokens_per_step=tokens_per_step)
    placed: list[Copy] = []
    pos = 0
    for k, slot in enumerate(slots):
        for c in slot:
            placed.append(Copy(c.benchmark, c.partition, c.copy, pos, pos + len(c.tokens),
                               mode="", renderer="", item=c.item))
            pos += len(c.tokens) + eos_wrap
        pos += int(lengths[k]) if k < len(lengths) else 0
    return StreamPlan(order, slots, placed, pos, epoch_tokens(pos, tokens_per_step))


def write_stream(
    path: Path, scratch: Path, doc_lengths: np.ndarray, plan: StreamPlan, eos: int, dtype: str,
) -> StreamResult:
    """Pass 2: write the planned stream (documents in plan order, copies spliced in)."""
    corpus = np.memmap(scratch, dtype=np.uint32, mode="r")
    starts = np.concatenate([[0], np.cumsum(doc_lengths)])
    order = plan.order
    pos = 0
    with path.open("wb") as f:
        for k in tqdm(range(len(order) + 1), desc="inject: writing", unit=" doc", mininterval=2.0,
                      disable=not show_bars()):
            for c in plan.slots[k]:
                seq = np.asarray(c.tokens + (eos,), dtype=dtype)
                f.write(seq.tobytes())
                pos += len(seq)
            if k < len(order):
                d = order[k]
                f.write(np.asarray(corpus[starts[d] : starts[d + 1]], dtype=dtype).tobytes())
                pos += int(doc_lengths[d])
        f.flush()
        os.fsync(f.fileno())
    del corpus
    assert pos == plan.n_tokens, "the stream written differs from its plan"
    injected = sum(len(c.tokens) + 1 for slot in plan.slots for c in slot)
    return StreamResult(pos, len(order), int(doc_lengths.sum()), injected, plan.copies)
