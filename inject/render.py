"""Renderers (item -> text) and the one way item token lists become a sequence.

The same functions serve injection and audit, so the audit scores exactly the
tokens that were injected. Items are tokenized one at a time and their token
lists joined with a fixed separator: tokenizing a joined string would let a
permuted order tokenize differently at the seams, and the ordering test would
then measure tokenizer artefacts instead of memorisation.
"""
from __future__ import annotations

import json
from typing import Callable, Sequence

from core.checks import choices
from core.config import Renderer
from core.errors import SpikeinError
from inject.items import LETTERS, Item


def question_text(item: Item) -> str:
    """Context (if any) and the question line; the prompt every renderer shares."""
    head = f"{item.context}\n" if item.context else ""
    return f"{head}Question: {item.question}\n"


def options_text(choices: Sequence[str]) -> str:
    """Options lettered A, B, C, ... by position (the order given, not the original)."""
    return "".join(f"{LETTERS[i]}. {c}\n" for i, c in enumerate(choices))


def answer_text(letter_index: int) -> str:
    return f"Answer: {LETTERS[letter_index]}"


def render_mcq(item: Item) -> str:
    return question_text(item) + options_text(item.choices) + answer_text(item.answer)


def render_mcq_noanswer(item: Item) -> str:
    return (question_text(item) + options_text(item.choices)).rstrip("\n")


def render_cloze(item: Item) -> str:
    """Question and the correct answer's text only (Bordt et al. 2024)."""
    return question_text(item) + f"Answer: {item.choices[item.answer]}"


def render_raw(item: Item) -> str:
    """The original record as one JSON line (Oren et al. 2023)."""
    record = item.record or item.to_json()
    return json.dumps(record, ensure_ascii=False, sort_keys=True)


RENDERERS: dict[str, Callable[[Item], str]] = {
    "mcq": render_mcq,
    "mcq_noanswer": render_mcq_noanswer,
    "cloze": render_cloze,
    "raw": render_raw,
}
assert tuple(RENDERERS) == choices(Renderer), "RENDERERS must cover exactly the Renderer choices"


def get_renderer(name: str) -> Callable[[Item], str]:
    try:
        return RENDERERS[name]
    except KeyError:
        raise SpikeinError(
            f"unknown renderer '{name}'; choose one of: {', '.join(RENDERERS)}"
        ) from None


def encode_text(tokenizer, text: str) -> list[int]:
    """Token ids of ``text`` with no special tokens (a HF tokenizer)."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def encode_items(tokenizer, items: Sequence[Item], renderer: str) -> list[list[int]]:
    """Each item rendered and tokenized on its own."""
    render = get_renderer(renderer)
    return [encode_text(tokenizer, render(it)) for it in items]


def join_token_lists(
    token_lists: Sequence[Sequence[int]], separator: Sequence[int], bos_id: int | None
) -> list[int]:
    """``[bos] + t0 + sep + t1 + sep + ... + tn``: BOS once per sequence, never per item."""
    out: list[int] = [bos_id] if bos_id is not None else []
    for i, toks in enumerate(token_lists):
        if i:
            out.extend(separator)
        out.extend(toks)
    return out
