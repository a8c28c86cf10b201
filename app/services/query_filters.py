"""Filters of a query: the Haystack filter syntax checked and bounded before any store sees it, then scoped to the
collection and what the caller may read."""

from __future__ import annotations

import math
import re
from typing import Any

from app.errors import InvalidInputError

_OPERATORS = {"==", "!=", ">", ">=", "<", "<=", "in", "not in"}
_FIELD = re.compile(r"content|id|meta\.[A-Za-z_][A-Za-z0-9_]{0,63}(\.[A-Za-z_][A-Za-z0-9_]{0,63})*")  # fullmatch only
MAX_FILTER_DEPTH = 8  # nested AND/OR/NOT levels (Lance's SQL parser fails from ~15 NOT/OR levels: a 500)
MAX_FILTER_CONDITIONS = 64  # comparisons and logical nodes in one filter
MAX_FILTER_LIST = 1024  # values in one `in` / `not in` list


def validate_filters(filters: dict[str, Any] | None) -> dict[str, Any] | None:
    """Check the Haystack filter syntax so a malformed or oversized filter is a 400, not a store error.

    Bounded: at most `MAX_FILTER_DEPTH` nested logical levels, `MAX_FILTER_CONDITIONS` nodes in all and
    `MAX_FILTER_LIST` values in an `in` list (a deep or huge filter would make the stores' parsers fail with a 500).
    """
    if filters is None:
        return None
    _check_filter(filters, depth=1, budget=[MAX_FILTER_CONDITIONS])
    return filters


def _check_filter(filters: Any, *, depth: int, budget: list[int]) -> None:
    if not isinstance(filters, dict):
        raise InvalidInputError("filters must be an object in Haystack filter syntax")
    budget[0] -= 1
    if budget[0] < 0:
        raise InvalidInputError(f"a filter may hold at most {MAX_FILTER_CONDITIONS} conditions")
    if "conditions" in filters:
        if filters.get("operator") not in ("AND", "OR", "NOT") or not isinstance(filters["conditions"], list):
            raise InvalidInputError("a logical filter needs operator AND/OR/NOT and a list of conditions")
        if depth > MAX_FILTER_DEPTH:
            raise InvalidInputError(f"filters may nest at most {MAX_FILTER_DEPTH} AND/OR/NOT levels")
        for condition in filters["conditions"]:
            _check_filter(condition, depth=depth + 1, budget=budget)
        return
    if not isinstance(filters.get("field"), str) or filters.get("operator") not in _OPERATORS or "value" not in filters:
        raise InvalidInputError(
            "a comparison filter needs 'field', 'operator' (==, !=, >, >=, <, <=, in, not in) and 'value'"
        )
    if not _FIELD.fullmatch(filters["field"]):
        raise InvalidInputError(f"filter field {filters['field']!r} must be 'content', 'id' or 'meta.<name>'")
    value = filters["value"]
    if filters["operator"] in ("in", "not in"):
        if not isinstance(value, list) or not all(is_filter_scalar(v) for v in value):
            raise InvalidInputError(f"operator '{filters['operator']}' needs a list of strings, numbers or booleans")
        if len(value) > MAX_FILTER_LIST:
            raise InvalidInputError(f"operator '{filters['operator']}' takes at most {MAX_FILTER_LIST} values")
    elif not is_filter_scalar(value) and value is not None:
        raise InvalidInputError("a filter value must be a string, number, boolean or null (a list for 'in')")


def is_filter_scalar(value: Any) -> bool:
    """Values every store can compare: strings, booleans, 64-bit integers, finite floats."""
    if isinstance(value, bool | str):
        return True
    if isinstance(value, int):
        return -(2**63) <= value < 2**63
    return isinstance(value, float) and math.isfinite(value)


def scoped_filters(
    collection: str, filters: dict[str, Any] | None, visibility: dict[str, Any] | None = None
) -> dict[str, Any]:
    """AND the collection and the caller's `visibility` (`app.services.visibility.read_filter`) into any user filter:
    a query never sees another collection's chunks, nor a document the caller may not read."""
    scope = {"field": "meta.collection", "operator": "==", "value": collection}
    conditions = [c for c in (scope, filters, visibility) if c]
    if len(conditions) == 1:
        return scope
    return {"operator": "AND", "conditions": conditions}
