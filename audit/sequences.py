"""The token sequences detectors score, built with the inject stage's own functions.

Ordering test: each item rendered and tokenized on its own (``encode_items``), shards
joined with ``join_token_lists`` and the manifest's separator and BOS, so the canonical
sequence of a one-shard document-mode partition is token for token the injected copy.
Multiple-choice prompts: full texts tokenized whole (as injection tokenizes an item),
then split at the prefix all variants share.
"""
from __future__ import annotations

import itertools
import math
import zlib
from dataclasses import replace
from typing import Sequence

import numpy as np

from audit.requests import Group
from inject.items import Item
from inject.render import encode_items, join_token_lists, options_text, question_text, render_cloze, render_mcq


def rng_for(seed: int, *names: str) -> np.random.Generator:
    """A generator fixed by the seed and names (benchmark, partition, detector), not by call order."""
    return np.random.default_rng([int(seed)] + [zlib.crc32(n.encode()) for n in names])


def shard_slices(n_items: int, shards: int) -> list[slice]:
    """Contiguous shards, the first ``n % shards`` one item longer (as the reference code)."""
    bounds = np.cumsum([0] + [len(a) for a in np.array_split(np.arange(n_items), shards)])
    return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def ordering_sequences(
    token_lists: Sequence[Sequence[int]],
    shards: int,
    permutations: int,
    rng: np.random.Generator,
    separator: Sequence[int],
    bos_id: int | None,
) -> tuple[list[list[int]], list[list[list[int]]]]:
    """Per shard: the canonical sequence and ``permutations`` shuffled-item sequences."""
    canonical, shuffled = [], []
    for sl in shard_slices(len(token_lists), shards):
        shard = list(token_lists[sl])
        canonical.append(join_token_lists(shard, separator, bos_id))
        orders = [rng.permutation(len(shard)) for _ in range(permutations)]
        shuffled.append([join_token_lists([shard[i] for i in o], separator, bos_id) for o in orders])
    return canonical, shuffled


def partition_tokens(tokenizer, items: Sequence[Item], renderer: str) -> list[list[int]]:
    return encode_items(tokenizer, items, renderer)


def option_orders(k: int, exhaustive_up_to: int, max_orders: int, rng: np.random.Generator) -> list[tuple[int, ...]]:
    """Option orders, the original (identity) first: all k! orders, or a seeded sample."""
    identity = tuple(range(k))
    if k <= exhaustive_up_to or math.factorial(k) <= max_orders:
        return list(itertools.permutations(range(k)))
    seen, out = {identity}, [identity]
    while len(out) < max_orders:
        order = tuple(int(i) for i in rng.permutation(k))
        if order not in seen:
            seen.add(order)
            out.append(order)
    return out


def _encode_all(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    return [list(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]


def continuation_group(tokenizer, prefix_text: str, texts: Sequence[str], bos_id: int | None) -> Group:
    """Texts that all start with ``prefix_text``, tokenized whole, split at a shared token prefix.

    The split is the prefix text's own tokens when every text's tokens start with them
    (byte-level BPE), else the texts' longest common token prefix; each continuation
    keeps at least one token.
    """
    full = _encode_all(tokenizer, texts)
    head = _encode_all(tokenizer, [prefix_text])[0]
    if not all(f[: len(head)] == head for f in full):
        n = 0
        while all(len(f) > n and f[n] == full[0][n] for f in full):
            n += 1
        head = full[0][:n]
    cut = min(len(head), min(len(f) for f in full) - 1)
    bos = [bos_id] if bos_id is not None else []
    return Group(prefix=bos + full[0][:cut], continuations=[f[cut:] for f in full])


def option_group(tokenizer, item: Item, orders: Sequence[tuple[int, ...]], bos_id: int | None) -> Group:
    """log p(options block | question) for each order, options relabelled A, B, ... by position."""
    q = question_text(item)
    texts = [q + options_text([item.choices[i] for i in order]) for order in orders]
    return continuation_group(tokenizer, q, texts, bos_id)


def answer_group(tokenizer, item: Item, style: str, bos_id: int | None) -> Group:
    """Zero-shot multiple choice: the item's rendering completed with each possible answer.

    ``letter``: the mcq rendering ending "Answer: <letter>"; ``text``: the cloze rendering
    ending "Answer: <choice text>".
    """
    render = {"letter": render_mcq, "text": render_cloze}[style]
    texts = [render(replace(item, answer=i)) for i in range(len(item.choices))]
    head = question_text(item) + (options_text(item.choices) if style == "letter" else "") + "Answer:"
    return continuation_group(tokenizer, head, texts, bos_id)
