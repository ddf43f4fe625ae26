"""The configured corpus as plain-text documents: the text readers of :mod:`sources.text` plus
the synthetic world (generated here in ``inject``, it is no file source)."""
from __future__ import annotations

import dataclasses
from typing import Any, Iterator, Mapping

from core.config import DataConfig
from inject.synthetic import corpus_documents
from sources.text import iter_documents as _iter_documents
from sources.text import split_document, text_readers

__all__ = ["iter_documents", "split_document"]


def iter_documents(data: DataConfig | Mapping[str, Any]) -> Iterator[str]:
    """Documents of ``cfg.data`` (any text kind, synthetic included), split at ``max_doc_chars``."""
    if isinstance(data, DataConfig):  # the readers of sources/ take the section's plain form
        data = dataclasses.asdict(data)
    readers = {"synthetic": lambda d: corpus_documents(d.get("synthetic")), **text_readers()}
    yield from _iter_documents(data, readers)
