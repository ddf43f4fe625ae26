"""The benchmark item: the unit that gets injected, partitioned and audited."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Sequence

from core.errors import SpikeinError

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class Item:
    """One multiple-choice item: as published, or as injected (options in injected order)."""

    id: str
    question: str
    choices: tuple[str, ...]
    answer: int
    context: str | None = None
    subject: str | None = None
    record: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "choices", tuple(self.choices))

    def problems(self) -> str | None:
        """Why this item is malformed, or None."""
        if not self.id:
            return "missing id"
        if not self.question or not str(self.question).strip():
            return "missing question"
        if len(self.choices) < 2:
            return f"fewer than 2 choices ({len(self.choices)})"
        if any(c is None or str(c) == "" for c in self.choices):
            return "empty choice"
        if not 0 <= self.answer < len(self.choices):
            return f"answer {self.answer} out of range for {len(self.choices)} choices"
        return None

    def to_json(self, **extra: Any) -> dict[str, Any]:
        row = asdict(self)
        row["choices"] = list(self.choices)
        row.update(extra)
        return row

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> Item:
        return cls(
            id=str(row["id"]),
            question=row["question"],
            choices=tuple(row["choices"]),
            answer=int(row["answer"]),
            context=row.get("context"),
            subject=row.get("subject"),
            record=row.get("record") or {},
        )


def permute_choices(item: Item, order: Sequence[int]) -> Item:
    """``item`` with choice ``k`` = original choice ``order[k]``, the answer following its text."""
    if sorted(order) != list(range(len(item.choices))):
        raise SpikeinError(f"item {item.id}: {list(order)} is not an order of its {len(item.choices)} choices")
    return replace(item, choices=tuple(item.choices[i] for i in order), answer=list(order).index(item.answer))


def read_items_jsonl(path: str | Path) -> list[Item]:
    """Read items written by :func:`write_items_jsonl` (a partition file)."""
    path = Path(path)
    if not path.exists():
        raise SpikeinError(f"missing file: {path}")
    items = []
    with path.open() as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                items.append(Item.from_json(json.loads(line)))
            except (KeyError, ValueError, TypeError) as e:
                raise SpikeinError(f"{path}:{lineno}: bad item row ({e})") from None
    return items


def items_jsonl_lines(items: Iterable[Item], **extra: Any) -> str:
    return "".join(json.dumps(it.to_json(**extra), ensure_ascii=False) + "\n" for it in items)


def rows_jsonl_lines(rows: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
