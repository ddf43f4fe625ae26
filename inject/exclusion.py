"""``inject.exclude_found``: drop the items the corpus already holds, before partitioning.

The tokenized corpus (the documents, no copies yet) is scanned once for every loaded
item of every benchmark, in its published option order (the injected order is only
drawn at partitioning; a quoted question is found whatever the option order), so that
no control starts out "seen" and no injected partition gets extra exposures.
"""
from __future__ import annotations

import sys

from core.errors import InputDataError
from inject.corpus_scan import find_in_corpus, memmap_pieces

SHOWN = 6


def drop_found(loaded: dict[str, tuple], corpus: tuple, workers: int) -> dict[str, tuple]:
    """``loaded``: name -> (settings, items, notes); ``corpus``: (uint32 token file, tokenizer, tokens)."""
    path, tokenizer, n_tokens = corpus
    wanted = {name: (settings.renderer, items) for name, (settings, items, _) in loaded.items()}
    found = find_in_corpus(memmap_pieces(path, "uint32", n_tokens), tokenizer, wanted, workers)
    out = {}
    for name, (settings, items, notes) in loaded.items():
        hits = found.get(name, {})
        kept = [it for it in items if it.id not in hits]
        if not kept:
            raise InputDataError(f"benchmark {name}: all {len(items)} items were found in the corpus "
                                 "(inject.exclude_found=true)")
        dropped = [it.id for it in items if it.id in hits]
        shown = ", ".join(f"{i} ({'+'.join(hits[i])})" for i in dropped[:SHOWN])
        more = f", ... ({len(dropped) - SHOWN} more, listed in data/manifest.json)" if len(dropped) > SHOWN else ""
        print(f"inject: exclude_found: dropped {len(dropped)} of {len(items)} {name} items found in the corpus"
              + (f": {shown}{more}" if dropped else ""), file=sys.stderr)
        out[name] = (settings, kept, {**notes, "excluded_found": dropped})
    return out
