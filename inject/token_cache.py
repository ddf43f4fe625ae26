"""Text corpora tokenized once: a token cache keyed by corpus content and tokenizer.

``data.token_cache=true`` tokenizes a text corpus (``data.kind`` text, jsonl, hub or
synthetic) into ``<data.cache_dir>/<key>/tokens.bin`` (headerless, the numpy format of
:mod:`sources.formats`, documents in reading order, each ``[bos] doc eos``); every run and
sweep point with the same corpus and tokenizer finds it there and only writes its overlay.
Training rows are read in a seeded order (``data.shuffle_seed``). A BPE trained here is
cached beside it (keyed by corpus and vocabulary size). Entries are built under a temporary
name and renamed into place, so a reader never sees half a cache.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from core.atomic import write_json
from core.config import SpikeinConfig
from inject.tokenizer import load_tokenizer, special_ids, tokenizer_hash, train_bpe, vocab_size

CONTENT_KEYS = ("kind", "paths", "text_field", "hub", "max_doc_chars", "max_documents", "synthetic")
TOKENS = "tokens.bin"


def cache_root(cfg: SpikeinConfig) -> Path:
    """``data.cache_dir``, or ``.token_cache`` beside the run dirs (shared by a sweep's points)."""
    if cfg.data.cache_dir:
        return Path(cfg.data.cache_dir)
    return Path(cfg.run_dir).resolve().parent / ".token_cache"


def corpus_key(data: dict[str, Any]) -> str:
    """The corpus's reading settings and the content of every local file it reads."""
    h = hashlib.sha256(json.dumps({k: data.get(k) for k in CONTENT_KEYS}, sort_keys=True, default=str).encode())
    for p in map(Path, data.get("paths") or []):
        for f in sorted(x for x in p.rglob("*") if x.is_file()) if p.is_dir() else [p]:
            h.update(f"{f.name}:{f.stat().st_size}".encode())
            with f.open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 22), b""):
                    h.update(chunk)
    return h.hexdigest()[:20]


def cached_corpus(cfg: SpikeinConfig, tokenizer_out: Path) -> tuple[Any, dict[str, Any]]:
    """(tokenizer, reader settings of the cached tokens), tokenizing the corpus if no run did yet."""
    data = dataclasses.asdict(cfg.data)  # keyed as the plain section: existing cache entries keep their key
    root = cache_root(cfg)
    root.mkdir(parents=True, exist_ok=True)
    ckey = corpus_key(data)
    tok = _tokenizer(cfg, data, root, ckey)
    tok.save_pretrained(str(tokenizer_out))
    entry = root / f"tokens-{hashlib.sha256(f'{ckey}/{tokenizer_hash(tok)}'.encode()).hexdigest()[:20]}"
    if not (entry / "meta.json").is_file():
        print(f"inject: tokenizing the corpus once into {entry}")
        _build(cfg, data, entry, tokenizer_out, tok)
    else:
        print(f"inject: corpus tokens from the cache {entry}")
    meta = json.loads((entry / "meta.json").read_text())
    reader = {"format": "numpy", "paths": [str((entry / TOKENS).resolve())], "dtype": meta["dtype"],
              "row_seed": cfg.data.shuffle_seed}
    return tok, reader


def _tokenizer(cfg: SpikeinConfig, data: dict, root: Path, ckey: str):
    source = cfg.model.tokenizer or cfg.model.pretrained
    if source:
        return load_tokenizer(source, trust_remote_code=cfg.model.trust_remote_code)
    from inject.corpus import iter_documents
    from inject.stage import bpe_vocab_size

    size = bpe_vocab_size(cfg)
    out = root / f"bpe-{ckey}-{size}"
    if not (out / "tokenizer.json").is_file():
        print(f"inject: training a byte-level BPE ({size} tokens) on the corpus (cached)")
        _publish(out, lambda tmp: train_bpe(iter_documents(data), size, tmp))
    return load_tokenizer(str(out))


def _build(cfg: SpikeinConfig, data: dict, entry: Path, tokenizer_dir: Path, tok) -> None:
    from inject.corpus import iter_documents
    from inject.stream import stream_dtype, tokenize_corpus

    dtype = stream_dtype(vocab_size(tok), cfg.inject.dtype)

    def build(tmp: Path) -> None:
        lengths = tokenize_corpus(iter_documents(data), tokenizer_dir, special_ids(tok), tmp / "tokens.u32",
                                  cfg.inject.workers, cfg.inject.chunk_documents)
        wide = np.memmap(tmp / "tokens.u32", dtype=np.uint32, mode="r")
        with (tmp / TOKENS).open("wb") as f:
            for i in range(0, len(wide), 1 << 24):  # narrowed in chunks: memory stays flat
                f.write(np.asarray(wide[i:i + (1 << 24)], dtype=dtype).tobytes())
        del wide
        (tmp / "tokens.u32").unlink()
        write_json(tmp / "meta.json", {"tokens": int(lengths.sum()), "documents": len(lengths), "dtype": dtype,
                                       "tokenizer_hash": tokenizer_hash(tok), "corpus": {k: data.get(k) for k in CONTENT_KEYS}})

    _publish(entry, build)


def _publish(final: Path, build) -> None:
    """Build under a temporary name, rename into place; a concurrent builder's finished copy wins."""
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))
    try:
        build(tmp)
        try:
            tmp.rename(final)
        except OSError:
            if not final.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
