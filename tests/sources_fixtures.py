"""Pre-tokenized corpora written byte for byte as their own tools write them.

Each writer takes a list of documents (token arrays) and writes files in one format;
the Megatron writer re-implements GPT-NeoX's ``MMapIndexedDataset.Index.writer``
(header ``MMIDIDX\\0\\0``, version 1, dtype code, sizes int32, pointers int64, doc_idx int64).
"""
from __future__ import annotations

import struct
from pathlib import Path
from typing import Sequence

import numpy as np

NEOX_CODES = {np.uint8: 1, np.int8: 2, np.int16: 3, np.int32: 4, np.int64: 5, np.float32: 6, np.float64: 7, np.uint16: 8}


def write_llmc(path: Path, tokens: np.ndarray, version: int = 1) -> Path:
    """llm.c dev/data/data_common.py write_datafile: 256 int32 header words, then the tokens."""
    magic, dtype = {1: (20240520, np.uint16), 7: (20240801, np.uint32)}[version]
    header = np.zeros(256, dtype=np.int32)
    header[0], header[1], header[2] = magic, version, len(tokens)
    with path.open("wb") as f:
        f.write(header.tobytes())
        f.write(np.asarray(tokens, dtype=dtype).tobytes())
    return path


def write_megatron(prefix: Path, docs: Sequence[np.ndarray], dtype=np.uint16) -> Path:
    """GPT-NeoX's builder + index writer: one sequence per document, doc_idx [0, 1, ..., n]."""
    sizes = np.asarray([len(d) for d in docs], dtype=np.int32)
    pointers = np.zeros(len(sizes), dtype=np.int64)
    pointers[1:] = np.cumsum(sizes[:-1].astype(np.int64) * np.dtype(dtype).itemsize)
    doc_idx = np.arange(len(docs) + 1, dtype=np.int64)
    with open(f"{prefix}.bin", "wb") as f:
        for d in docs:
            f.write(np.asarray(d, dtype=dtype).tobytes(order="C"))
    with open(f"{prefix}.idx", "wb") as f:
        f.write(b"MMIDIDX\x00\x00")
        f.write(struct.pack("<Q", 1))
        f.write(struct.pack("<B", NEOX_CODES[dtype]))
        f.write(struct.pack("<Q", len(sizes)))
        f.write(struct.pack("<Q", len(doc_idx)))
        f.write(sizes.tobytes(order="C"))
        f.write(pointers.tobytes(order="C"))
        f.write(doc_idx.tobytes(order="C"))
    return prefix


def write_datatrove(path: Path, docs: Sequence[np.ndarray], dtype=np.uint16) -> Path:
    """datatrove's tokenizer output: tokens in ``.ds``, uint64 document ends in ``.ds.index``."""
    ends = np.cumsum([len(d) for d in docs]).astype(np.uint64)
    path.write_bytes(np.concatenate(docs).astype(dtype).tobytes())
    Path(f"{path}.index").write_bytes(ends.tobytes())
    return path


def write_olmo(path: Path, tokens: np.ndarray, order: np.ndarray | None = None, dtype=np.uint16) -> Path:
    """OLMo: a headerless memmap of tokens (and its global_indices, a raw uint32 memmap)."""
    mm = np.memmap(path, dtype=dtype, mode="w+", shape=(len(tokens),))
    mm[:] = tokens
    mm.flush()
    del mm
    if order is not None:
        gi = np.memmap(path.with_name("global_indices.npy"), dtype=np.uint32, mode="w+", shape=(len(order),))
        gi[:] = order
        gi.flush()
    return path


def write_hf(path: Path, docs: Sequence[np.ndarray]) -> Path:
    import datasets

    datasets.Dataset.from_dict({"input_ids": [list(map(int, d)) for d in docs]}).save_to_disk(str(path))
    return path


def random_docs(n_docs: int, vocab: int, eos: int, seed: int = 0, lo: int = 20, hi: int = 200) -> list[np.ndarray]:
    """Documents of random token ids below ``vocab`` (never ``eos``), each ending in ``eos``."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_docs):
        d = rng.integers(0, vocab, size=int(rng.integers(lo, hi)))
        d[d == eos] = (eos + 1) % vocab
        out.append(np.append(d, eos))
    return out


def write_corpus(fmt: str, root: Path, docs: Sequence[np.ndarray]) -> list[str]:
    """Write ``docs`` as format ``fmt`` under ``root``; returns the data.paths overrides' value."""
    root.mkdir(parents=True, exist_ok=True)
    flat = np.concatenate(docs)
    half = len(docs) // 2
    if fmt == "llmc":  # two shards, as llm.c's fineweb.py writes them
        write_llmc(root / "fw_train_000000.bin", np.concatenate(docs[:half]))
        write_llmc(root / "fw_train_000001.bin", np.concatenate(docs[half:]))
        return [str(root)]
    if fmt == "nanogpt":
        flat.astype(np.uint16).tofile(root / "train.bin")
        return [str(root / "train.bin")]
    if fmt == "megatron":
        return [str(write_megatron(root / "corpus_text_document", docs))]
    if fmt == "numpy":
        return [str(write_olmo(root / "part-0-00000.npy", flat))]
    if fmt == "datatrove":
        write_datatrove(root / "000_tokens.ds", docs[:half])
        write_datatrove(root / "001_tokens.ds", docs[half:])
        return [str(root)]
    if fmt == "hf":
        return [str(write_hf(root / "hf", docs))]
    raise ValueError(fmt)


def tree_hash(root: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(f.relative_to(root).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()
