"""Corpus readers: every source becomes an iterator of plain-text documents.

Readers stream (one file or record at a time) so memory does not grow with the
corpus; long documents are split so no single document dominates a copy's
neighbourhood or a tokenizer task.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator, Mapping

from core.errors import InputDataError
from inject.synthetic import corpus_documents

TEXT_SUFFIXES = {".txt", ".md", ".text", ".tokens", ""}


def iter_documents(data: Mapping[str, Any]) -> Iterator[str]:
    """Documents of the configured corpus (``cfg.data``), split at ``max_doc_chars``."""
    readers = {"synthetic": _synthetic, "text": _text_files, "jsonl": _jsonl, "hub": _hub}
    kind = data.get("kind")
    if kind not in readers:
        raise InputDataError(f"unknown data.kind '{kind}'; choose one of: {', '.join(readers)}")
    limit = data.get("max_documents")
    n = 0
    for doc in readers[kind](data):
        for piece in split_document(doc, int(data.get("max_doc_chars") or 0)):
            if limit is not None and n >= limit:
                return
            n += 1
            yield piece


def split_document(text: str, max_chars: int) -> Iterator[str]:
    """Split at paragraph, then line, then hard boundaries; drop empty pieces."""
    text = text.strip()
    if not text:
        return
    if max_chars <= 0 or len(text) <= max_chars:
        yield text
        return
    piece = ""
    for para in _units(text, max_chars):
        if piece and len(piece) + 2 + len(para) > max_chars:
            yield piece
            piece = ""
        piece = f"{piece}\n\n{para}" if piece else para
    if piece:
        yield piece


def _units(text: str, max_chars: int) -> Iterator[str]:
    for para in text.split("\n\n"):
        para = para.strip()
        if len(para) <= max_chars:
            if para:
                yield para
            continue
        for line in para.split("\n"):
            for i in range(0, len(line), max_chars):
                if line[i : i + max_chars].strip():
                    yield line[i : i + max_chars]


def _paths(data: Mapping[str, Any], suffixes: set[str] | None) -> list[Path]:
    paths = list(data.get("paths") or [])
    if not paths:
        raise InputDataError(f"data.paths is empty for data.kind={data.get('kind')}")
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.is_file() and (suffixes is None or f.suffix in suffixes))
        elif p.is_file():
            files.append(p)
        else:
            raise InputDataError(f"data.paths: missing file or directory: {p}")
    return files


def _text_files(data: Mapping[str, Any]) -> Iterator[str]:
    for f in _paths(data, TEXT_SUFFIXES):
        yield f.read_text(encoding="utf-8", errors="replace")


def _jsonl(data: Mapping[str, Any]) -> Iterator[str]:
    field = data.get("text_field") or "text"
    for f in _paths(data, {".jsonl", ".json"}):
        with f.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    yield json.loads(line)[field]
                except (ValueError, KeyError, TypeError):
                    raise InputDataError(f"{f}:{lineno}: not a JSON object with a '{field}' field") from None


def _hub(data: Mapping[str, Any]) -> Iterator[str]:
    import datasets

    hub = data.get("hub") or {}
    field = data.get("text_field") or "text"
    try:
        ds = datasets.load_dataset(
            hub["path"], hub["name"], split=hub["split"], streaming=bool(hub["streaming"]),
        )
    except Exception as e:  # datasets raises many types for unreachable/unknown datasets
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputDataError(f"cannot load corpus dataset '{hub.get('path')}': {first}") from None
    for row in ds:
        yield row[field]


def _synthetic(data: Mapping[str, Any]) -> Iterator[str]:
    yield from corpus_documents(data.get("synthetic"))
