"""The value checks config classes run on themselves (``validate()`` in core/config.py and
each detector's ``Config``): what a type cannot say (ranges, choices). Each failure is one
ConfigError line, ``<key>=<value>: <what was expected>``.
"""
from __future__ import annotations

import json
from typing import Any, Iterable, get_args

from core.errors import ConfigError


def choices(alias: Any) -> tuple[Any, ...]:
    """The allowed values of a ``Literal[...]`` choice alias, in the order written."""
    return get_args(alias)


def require(ok: bool, key: str, value: Any, expected: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={show(value)}: {expected}")


def show(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (list, tuple, dict)) else str(value)


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def at_least(key: str, value: Any, low: float, optional: bool = False) -> None:
    if optional and value is None:
        return
    require(is_number(value) and value >= low, key, value, f"must be >= {low:g}" + (" (or null)" if optional else ""))


def one_of(key: str, value: Any, allowed: Iterable[Any]) -> None:
    allowed = tuple(allowed)
    require(value in allowed, key, value,
            "choose one of: " + ", ".join(str(c).lower() if c is None else str(c) for c in allowed))


def auto_or_positive(key: str, value: Any, optional: bool) -> None:
    ok = value == "auto" or (is_number(value) and value > 0) or (optional and value is None)
    require(ok, key, value, "expected a positive number or auto" + (" or null" if optional else ""))
