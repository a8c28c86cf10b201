"""Init-argument checks shared by the components (one wording for every bounded integer)."""

from __future__ import annotations

from typing import Any


def _describe(minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f"an integer between {minimum} and {maximum}"
    if minimum == 1:
        return "a positive integer"
    if minimum is not None:
        return f"an integer >= {minimum}"
    if maximum is not None:
        return f"an integer <= {maximum}"
    return "an integer"


def check_int(value: Any, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return `value` if it is an int (not a bool) within `[minimum, maximum]`; raise ValueError naming `name`.

    >>> check_int(5, "top_k", minimum=1)
    5
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or (minimum is not None and value < minimum)
        or (maximum is not None and value > maximum)
    ):
        raise ValueError(f"{name} must be {_describe(minimum, maximum)}, got {value!r}")
    return value


def check_positive_number(value: Any, name: str) -> float:
    """Return `value` if it is an int or float (not a bool) greater than 0; raise ValueError naming `name`.

    >>> check_positive_number(0.5, "timeout_s")
    0.5
    """
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return value


def check_bool(value: Any, name: str) -> bool:
    """Return `value` if it is a bool (YAML `true`/`false`, not `"yes"` or `1`); raise ValueError naming `name`."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be a bool, got {value!r}")
    return value
