"""Duplicate items in a benchmark file, found when it is loaded.

Two items are duplicates when their context, question and *set* of choices agree after
whitespace normalisation (the option order and the id may differ). Left in, a duplicate
could land in a control and an injected partition at once (the control would then be
"seen"), or twice in one partition (injected twice per copy). They are merged: the
first is kept, the others are counted and listed. Near-duplicates (same context and
question, other choices) are kept and listed as a warning: a model that saw one may
recognise the other.
"""
from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from inject.items import Item

SHOWN = 6  # pairs named in the one-line message; all of them go to the manifest


def squash(text: object) -> str:
    """Whitespace runs to one space, ends stripped."""
    return " ".join(str(text or "").split())


def question_key(it: Item) -> tuple[str, str]:
    return squash(it.context), squash(it.question)


def item_key(it: Item) -> tuple[str, str, tuple[str, ...]]:
    return (*question_key(it), tuple(sorted(squash(c) for c in it.choices)))


@dataclass(frozen=True)
class Duplicates:
    """What loading merged (kept id -> the ids merged into it) and only warned about."""

    merged: dict[str, list[str]] = field(default_factory=dict)
    near: list[list[str]] = field(default_factory=list)  # same question, other choices

    @property
    def n_merged(self) -> int:
        return sum(len(v) for v in self.merged.values())

    def to_json(self) -> dict:
        return {"merged": self.merged, "near": self.near} if self.merged or self.near else {}


def merge_duplicates(benchmark: str, items: Sequence[Item]) -> tuple[list[Item], Duplicates]:
    """The items with exact duplicates merged (first kept, file order otherwise unchanged)."""
    first: dict[tuple, Item] = {}
    merged: dict[str, list[str]] = defaultdict(list)
    kept: list[Item] = []
    for it in items:
        key = item_key(it)
        if key in first:
            merged[first[key].id].append(it.id)
            continue
        first[key] = it
        kept.append(it)
    dups = Duplicates(dict(merged), _near_duplicates(kept))
    _say(benchmark, len(items), dups)
    return kept, dups


def _near_duplicates(items: Sequence[Item]) -> list[list[str]]:
    by_question: dict[tuple[str, str], list[str]] = defaultdict(list)
    for it in items:
        by_question[question_key(it)].append(it.id)
    return [ids for ids in by_question.values() if len(ids) > 1]


def _say(benchmark: str, n_items: int, dups: Duplicates) -> None:
    if dups.merged:
        pairs = [f"{d} = {k}" for k, ds in dups.merged.items() for d in ds]
        more = f", ... ({len(pairs) - SHOWN} more, all listed in data/manifest.json)" if len(pairs) > SHOWN else ""
        print(f"benchmark {benchmark}: merged {dups.n_merged} exact duplicate item(s) of {n_items} "
              f"(same question and choices; first kept): {', '.join(pairs[:SHOWN])}{more}", file=sys.stderr)
    if dups.near:
        groups = [" ~ ".join(g) for g in dups.near]
        more = f", ... ({len(groups) - SHOWN} more)" if len(groups) > SHOWN else ""
        print(f"benchmark {benchmark}: warning: {len(groups)} question(s) occur with other choices "
              f"(near-duplicates, kept): {', '.join(groups[:SHOWN])}{more}", file=sys.stderr)
