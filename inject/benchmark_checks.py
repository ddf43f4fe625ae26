"""What a benchmark's published option order gives away, whoever trained the model.

- :func:`answer_position_warning`: the gold answer at one position for most items (SciQ
  mapped as ``[correct_answer, distractor1..3]`` answers A every time): accuracy then
  measures the letter, and the original option order is special for any model. Checked at
  inject time and at audit time (:func:`warn_answer_position`), a warning, not an error:
  such a benchmark is still a valid thing to inject, it just needs its options shuffled.
- :func:`option_structure`: an item whose options are listed in an order a model can
  prefer without having seen it (sorted by length or by value, "all/none of the above"),
  which breaks the option-shuffle test's uniform null.
- :func:`option_structures`: the same per item of a set of items, plus templates, which only
  show across items: an option set recurring verbatim in several items (MMLU abstract
  algebra's "True, True / False, False / True, False / False, True"), True/False options,
  and "Statement 1 | ... Statement 2 | ..." questions. A templated order is the benchmark's,
  not the item's: any model that has seen such questions prefers it.
"""
from __future__ import annotations

import re
import sys
from collections import Counter
from typing import Callable, Sequence

import numpy as np
from scipy import stats

from inject.items import LETTERS, Item

MIN_ITEMS = 10  # fewer items: no claim about a position bias
MAX_P = 1e-3  # binomial p of the top position's count against chance
TEMPLATES = ("template", "true_false", "statements")  # structures that recur across items
STRUCTURES = ("length_sorted", "numbers_sorted", "above_option", *TEMPLATES)
MIN_TEMPLATE_ITEMS = 3  # an option set in this many items (same strings, same order) is a template
_TRUE_FALSE = re.compile(r"^\s*(true|false)(\s*[,/|]?\s*(true|false))*\s*\.?\s*$", re.IGNORECASE)
_STATEMENTS = re.compile(r"\bstatement\s*1\s*[|:].*\bstatement\s*2\s*[|:]", re.IGNORECASE | re.DOTALL)
# a leading number ("12", "-3.5", "$1,000", "40 kg", "25%"); "0,1" or "2x" are not numbers
_NUMBER = re.compile(r"^\s*([-+]?)\$?((\d{1,3}(,\d{3})+|\d+)(\.\d+)?|\.\d+)(?=\s|%|$)")
_ABOVE = re.compile(r"\b(all|none|both|neither) of (the )?(above|these|those|them)\b|\bboth [a-e] and [a-e]\b",
                    re.IGNORECASE)


def answer_position_warning(name: str, items: Sequence[Item]) -> str | None:
    """One line when one answer position holds most items, else None.

    "Most" is relative to chance: the top position's share must lie past halfway from its
    chance share (1/k for k options) to 1, and be unlikely by chance (binomial p < 1e-3).
    """
    if len(items) < MIN_ITEMS:
        return None
    answers = np.array([it.answer for it in items])
    sizes = np.array([len(it.choices) for it in items])
    position = int(np.bincount(answers).argmax())
    count = int((answers == position).sum())
    chance = float(np.mean(np.where(position < sizes, 1.0 / sizes, 0.0)))
    share = count / len(items)
    if share < chance + (1.0 - chance) / 2 or stats.binom.sf(count - 1, len(items), chance) >= MAX_P:
        return None
    letter = LETTERS[position]
    return (f"benchmark {name}: the gold answer is option {letter} for {count} of {len(items)} items ({share:.0%}, "
            f"{chance:.0%} by chance): always answering {letter} scores {share:.2f} and the original option order is "
            f"special for any model; set inject.option_order=shuffled")


def warn_answer_position(name: str, items: Sequence[Item], log: Callable[[str], None] | None = None,
                         option_order: str | None = None) -> None:
    """The inject-time and audit-time hook: log the warning, if any (none once options are shuffled)."""
    message = None if option_order == "shuffled" else answer_position_warning(name, items)
    if message is not None:
        (log or _stderr)(f"warning: {message}")


def _stderr(message: str) -> None:
    print(f"spikein: {message}", file=sys.stderr, flush=True)


def option_structure(choices: Sequence[str]) -> list[str]:
    """The kinds of structure (of :data:`STRUCTURES`) in this published option order."""
    found = []
    if _monotone([len(c) for c in choices]):
        found.append("length_sorted")
    numbers = [_number(c) for c in choices]
    if None not in numbers and _monotone(numbers):
        found.append("numbers_sorted")
    if any(_ABOVE.search(c) for c in choices):
        found.append("above_option")
    return found


def _monotone(values: list) -> bool:
    """Sorted either way, with at least two distinct values (all equal: every order is alike)."""
    pairs = list(zip(values, values[1:]))
    return len(set(values)) > 1 and (all(a <= b for a, b in pairs) or all(a >= b for a, b in pairs))


def _number(choice: str) -> float | None:
    match = _NUMBER.match(choice)
    return float(match.group(1) + match.group(2).replace(",", "")) if match else None


def option_structures(items: Sequence[Item]) -> list[list[str]]:
    """Per item, the kinds of structure (of :data:`STRUCTURES`) of its published option order,
    templates (:data:`TEMPLATES`) judged across ``items``."""
    recurring = Counter(_option_set(it.choices) for it in items)
    out = []
    for it in items:
        kinds = option_structure(it.choices)
        if len(it.choices) > 1 and recurring[_option_set(it.choices)] >= MIN_TEMPLATE_ITEMS:
            kinds.append("template")
        if all(_TRUE_FALSE.match(c) for c in it.choices):
            kinds.append("true_false")
        if _STATEMENTS.search(it.question):
            kinds.append("statements")
        out.append(kinds)
    return out


def is_templated(kinds: Sequence[str]) -> bool:
    return any(k in TEMPLATES for k in kinds)


def _option_set(choices: Sequence[str]) -> tuple[str, ...]:
    return tuple(" ".join(c.split()) for c in choices)
