"""One reader per pre-tokenized format: files -> a :class:`sources.tokens.TokenCorpus`.

Every reader opens its files read-only as memory maps (arrow views for Hugging Face
datasets) and checks headers and sizes, never the tokens themselves; a header that does
not say what the format promises is refused with one line naming the file.
"""
from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from core.config import HubCorpusConfig
from core.errors import InputDataError
from sources.tokens import FORMATS, TokenCorpus, check_dtype, expand_paths

# llm.c dev/data/data_common.py: 256 int32 header words (magic, version, token count)
LLMC_HEADER_WORDS = 256
LLMC_VERSIONS = {(20240520, 1): "uint16", (20240801, 7): "uint32"}
# GPT-NeoX megatron/data/indexed_dataset.py: MMapIndexedDataset index
MEGATRON_MAGIC = b"MMIDIDX\x00\x00"
MEGATRON_DTYPES = {1: "uint8", 2: "int8", 3: "int16", 4: "int32", 5: "int64", 6: "float32", 7: "float64", 8: "uint16"}


def open_corpus(data: Mapping[str, Any], sample_length: int) -> TokenCorpus:
    """The corpus ``data`` (``cfg.data`` with ``kind: tokens``) names, in rows of ``sample_length``."""
    fmt = data.get("format")
    readers = {"llmc": _llmc, "nanogpt": _nanogpt, "megatron": _megatron, "numpy": _numpy,
               "datatrove": _datatrove, "hf": _hf}
    if fmt not in readers:
        raise InputDataError(f"unknown data.format '{fmt}' for data.kind=tokens; choose one of: {', '.join(FORMATS)}")
    if sample_length < 2:
        raise InputDataError(f"data.sample_length must be at least 2, got {sample_length}")
    corpus = readers[fmt](data, sample_length)
    if data.get("row_seed") is not None:  # a token cache's rows in a seeded order (as a text stream's documents)
        corpus.order = np.random.default_rng(int(data["row_seed"])).permutation(corpus.n_stored_rows)
    return corpus


def _memmap(path: Path, dtype: str, offset: int = 0, count: int | None = None) -> np.ndarray:
    itemsize = np.dtype(dtype).itemsize
    size = path.stat().st_size - offset
    if count is None:
        if size % itemsize:
            raise InputDataError(f"{path}: {size} bytes is not a whole number of {dtype} tokens (data.dtype?)")
        count = size // itemsize
    if count == 0:
        return np.zeros(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=(count,))


def _llmc(data: Mapping[str, Any], length: int) -> TokenCorpus:
    files = expand_paths(data.get("paths") or [], (".bin",), "llmc")
    segments, dtypes = [], set()
    for f in files:
        if f.stat().st_size < 4 * LLMC_HEADER_WORDS:
            raise InputDataError(f"{f}: shorter than the llm.c header ({4 * LLMC_HEADER_WORDS} bytes)")
        header = np.fromfile(f, dtype="<i4", count=LLMC_HEADER_WORDS)
        dtype = LLMC_VERSIONS.get((int(header[0]), int(header[1])))
        if dtype is None:
            raise InputDataError(f"{f}: not an llm.c token shard (magic {int(header[0])} version {int(header[1])}; "
                                 "expected 20240520/1 or 20240801/7)")
        count = int(header[2])
        expected = 4 * LLMC_HEADER_WORDS + count * np.dtype(dtype).itemsize
        if f.stat().st_size != expected:
            raise InputDataError(f"{f}: header says {count} tokens ({expected} bytes) but the file has "
                                 f"{f.stat().st_size} bytes")
        segments.append(_memmap(f, dtype, 4 * LLMC_HEADER_WORDS, count))
        dtypes.add(dtype)
    if len(dtypes) > 1:
        raise InputDataError(f"llm.c shards mix token types {sorted(dtypes)} (data.paths)")
    return TokenCorpus("llmc", segments, length, dtypes.pop(), files)


def _raw(data: Mapping[str, Any], length: int, fmt: str, suffixes: tuple[str, ...], default: str) -> TokenCorpus:
    dtype = check_dtype(str(data.get("dtype") or default), f"data.dtype for data.format={fmt}")
    files = expand_paths(data.get("paths") or [], suffixes, fmt)
    return TokenCorpus(fmt, [_memmap(f, dtype) for f in files], length, dtype, files)


def _nanogpt(data: Mapping[str, Any], length: int) -> TokenCorpus:
    return _raw(data, length, "nanogpt", (".bin",), "uint16")


def _numpy(data: Mapping[str, Any], length: int) -> TokenCorpus:
    corpus = _raw(data, length, "numpy", (".npy",), "uint16")
    if data.get("global_indices"):
        path = Path(str(data["global_indices"]))
        if not path.is_file():
            raise InputDataError(f"data.global_indices: missing file {path}")
        corpus.order = _global_indices(path)
        corpus.files.append(path)
        corpus.__post_init__()  # checks the order against the rows
    return corpus


def _global_indices(path: Path) -> np.ndarray:
    """OLMo writes its order as a raw uint32 memmap (named .npy); a real .npy is read as one too."""
    with path.open("rb") as f:
        is_npy = f.read(6) == b"\x93NUMPY"
    return np.load(path, mmap_mode="r") if is_npy else _memmap(path, "uint32")


def _datatrove(data: Mapping[str, Any], length: int) -> TokenCorpus:
    corpus = _raw(data, length, "datatrove", (".ds",), "uint16")
    for f, seg in zip(list(corpus.files), corpus.segments):
        index = Path(f"{f}.index")
        if not index.is_file():
            raise InputDataError(f"{f}: missing its datatrove index {index.name}")
        ends = _memmap(index, "<u8")
        if len(ends) and int(ends[-1]) != len(seg):
            raise InputDataError(f"{index}: documents end at token {int(ends[-1])} but {f.name} holds "
                                 f"{len(seg)} {corpus.dtype} tokens (data.dtype?)")
        corpus.files.append(index)
    return corpus


def _megatron(data: Mapping[str, Any], length: int) -> TokenCorpus:
    prefixes = []
    for p in data.get("paths") or []:
        p = str(p)
        prefixes.append(p[:-4] if p.endswith((".bin", ".idx")) else p)
    if not prefixes:
        raise InputDataError("data.paths is empty for data.kind=tokens data.format=megatron")
    segments, files, dtypes = [], [], set()
    for prefix in dict.fromkeys(prefixes):
        idx, binf = Path(prefix + ".idx"), Path(prefix + ".bin")
        for f in (idx, binf):
            if not f.is_file():
                raise InputDataError(f"data.paths: missing Megatron file {f}")
        dtype, first, stop = _megatron_index(idx)
        seg = _memmap(binf, dtype)
        if stop != len(seg) * np.dtype(dtype).itemsize:
            raise InputDataError(f"{idx}: its last sequence ends at byte {stop} but {binf.name} has "
                                 f"{binf.stat().st_size} bytes")
        segments.append(seg[first // np.dtype(dtype).itemsize:])
        files += [idx, binf]
        dtypes.add(dtype)
    if len(dtypes) > 1:
        raise InputDataError(f"Megatron files mix token types {sorted(dtypes)} (data.paths)")
    if data.get("index_map"):
        if len(segments) != 1:
            raise InputDataError("data.index_map reads one Megatron dataset (one data.paths prefix)")
        return IndexMapCorpus.open(Path(str(data["index_map"])), prefixes[0], segments[0], length, dtype, files)
    return TokenCorpus("megatron", segments, length, dtypes.pop(), files)


class IndexMapCorpus(TokenCorpus):
    """A Megatron dataset read through GPT-NeoX's index maps (``packed``): training sample ``r``
    is sample ``shuffle_idx[r]``, which runs from ``sample_idx[j] = (doc_idx position, offset)``
    to ``sample_idx[j+1]`` inclusive (``seq_length + 1`` tokens across documents ``doc_idx[...]``),
    exactly as ``GPT2Dataset.__getitem__`` reads it."""

    doc_idx: np.ndarray  # the index maps (memory-mapped .npy files)
    sample_idx: np.ndarray
    shuffle_idx: np.ndarray
    sizes: np.ndarray  # the .idx's document sizes and byte pointers
    pointers: np.ndarray
    itemsize: int
    base: int  # byte pointer of the first document

    @classmethod
    def open(cls, prefix: Path, data_prefix: str, tokens: np.ndarray, length: int, dtype: str,
             files: list[Path]) -> IndexMapCorpus:
        maps = [Path(f"{prefix}_{name}.npy") for name in ("doc_idx", "sample_idx", "shuffle_idx")]
        for f in maps:
            if not f.is_file():
                raise InputDataError(f"data.index_map: missing GPT-NeoX index map {f}")
        idx = Path(data_prefix + ".idx")
        with idx.open("rb") as fh:
            n = struct.unpack("<Q", fh.read(34)[18:26])[0]
        corpus = cls.__new__(cls)
        corpus.format, corpus.segments, corpus.sample_length, corpus.dtype = "megatron", [tokens], length, dtype
        corpus.files, corpus.order = files + maps, None
        corpus.doc_idx, corpus.sample_idx, corpus.shuffle_idx = (np.load(f, mmap_mode="r") for f in maps)
        corpus.sizes = np.memmap(idx, dtype="<i4", mode="r", offset=34, shape=(n,))
        corpus.pointers = np.memmap(idx, dtype="<i8", mode="r", offset=34 + 4 * n, shape=(n,))
        corpus.itemsize = np.dtype(dtype).itemsize
        corpus.base = int(corpus.pointers[0])
        corpus.row_starts = np.array([0, len(corpus.shuffle_idx)], dtype=np.int64)
        return corpus

    @property
    def n_stored_rows(self) -> int:
        return len(self.shuffle_idx)

    def _doc(self, k: int, offset: int = 0, count: int | None = None) -> np.ndarray:
        doc = int(self.doc_idx[k])
        start = (int(self.pointers[doc]) - self.base) // self.itemsize + offset
        n = int(self.sizes[doc]) - offset if count is None else count
        return self.segments[0][start:start + n]

    def row(self, r: int) -> np.ndarray:
        j = int(self.shuffle_idx[r])
        (df, of), (dl, ol) = (tuple(map(int, self.sample_idx[j])), tuple(map(int, self.sample_idx[j + 1])))
        if df == dl:
            out = np.asarray(self._doc(df, of, ol - of + 1))
        else:
            parts = [self._doc(df, of)] + [self._doc(k) for k in range(df + 1, dl)] + [self._doc(dl, 0, ol + 1)]
            out = np.concatenate(parts)
        if len(out) != self.sample_length:
            raise InputDataError(f"GPT-NeoX index map sample {j} holds {len(out)} tokens, not "
                                 f"data.sample_length={self.sample_length} (seq_length + 1)")
        return out


def _megatron_index(idx: Path) -> tuple[str, int, int]:
    """(dtype, byte offset of the first sequence, byte where the last one ends), read from the header
    and the first and last entries only (Pythia's index has 146M sequences)."""
    with idx.open("rb") as f:
        head = f.read(len(MEGATRON_MAGIC) + 8 + 1 + 8 + 8)
    if len(head) < 34 or head[:9] != MEGATRON_MAGIC:
        raise InputDataError(f"{idx}: not a Megatron MMIDIDX index")
    (version,) = struct.unpack("<Q", head[9:17])
    code = head[17]
    n, n_doc = struct.unpack("<QQ", head[18:34])
    if version != 1:
        raise InputDataError(f"{idx}: MMIDIDX version {version}, only version 1 is read")
    dtype = MEGATRON_DTYPES.get(code)
    if dtype is None or not np.issubdtype(np.dtype(dtype), np.integer):
        raise InputDataError(f"{idx}: dtype code {code} is not an integer token type")
    expected = 34 + 4 * n + 8 * n + 8 * n_doc
    if idx.stat().st_size != expected or n == 0:
        raise InputDataError(f"{idx}: {n} sequences and {n_doc} document entries need {expected} bytes, "
                             f"the file has {idx.stat().st_size}")
    sizes = np.memmap(idx, dtype="<i4", mode="r", offset=34, shape=(n,))
    pointers = np.memmap(idx, dtype="<i8", mode="r", offset=34 + 4 * n, shape=(n,))
    stop = int(pointers[-1]) + int(sizes[-1]) * np.dtype(dtype).itemsize
    return dtype, int(pointers[0]), stop


class ChunkedTokens:
    """Arrow chunks of a token column as one 1-D array (slices only: what rows need)."""

    def __init__(self, chunks: list[np.ndarray]) -> None:
        self.chunks = [c for c in chunks if len(c)]
        self.starts = np.concatenate([[0], np.cumsum([len(c) for c in self.chunks], dtype=np.int64)])
        self.dtype = self.chunks[0].dtype if self.chunks else np.dtype("int64")

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, key: slice) -> np.ndarray:
        start, stop, _ = key.indices(len(self))
        parts, pos = [], start
        while pos < stop:
            k = int(np.searchsorted(self.starts, pos, side="right")) - 1
            take = min(stop, int(self.starts[k + 1])) - pos
            off = pos - int(self.starts[k])
            parts.append(self.chunks[k][off:off + take])
            pos += take
        return np.concatenate(parts) if parts else np.zeros(0, dtype=self.dtype)


def _hf(data: Mapping[str, Any], length: int) -> TokenCorpus:
    import datasets

    paths = list(data.get("paths") or [])
    if len(paths) != 1:
        raise InputDataError(f"data.format=hf reads one dataset directory (data.paths), got {len(paths)}")
    try:
        ds = datasets.load_from_disk(str(paths[0]))
    except (FileNotFoundError, ValueError) as e:
        raise InputDataError(f"data.paths: cannot load a saved dataset from {paths[0]}: {str(e).splitlines()[0]}") from None
    if isinstance(ds, datasets.DatasetDict):
        split = str((data.get("hub") or {}).get("split") or HubCorpusConfig.split)
        if split not in ds:
            raise InputDataError(f"{paths[0]}: no split '{split}' (data.hub.split); have {', '.join(ds)}")
        ds = ds[split]
    if "input_ids" not in ds.column_names:
        raise InputDataError(f"{paths[0]}: no input_ids column (columns: {', '.join(ds.column_names)})")
    column = ds.data.column("input_ids")
    chunks = [c.flatten().to_numpy(zero_copy_only=True) for c in column.chunks]  # views of the arrow maps
    tokens = ChunkedTokens(chunks)
    files = [Path(f["filename"]) for f in ds.cache_files]
    return TokenCorpus("hf", [tokens], length, str(tokens.dtype), files)  # type: ignore[list-item]
