"""OpenAI's attribute filter grammar (vector store search, `file_search` tools) translated into Haystack filters.

A comparison `{"type": "eq"|"ne"|"gt"|"gte"|"lt"|"lte"|"in"|"nin", "key": K, "value": V}` becomes
`{"field": "meta.K", "operator": "=="|"!="|">"|">="|"<"|"<="|"in"|"not in", "value": V}`; a compound
`{"type": "and"|"or", "filters": [...]}` becomes `{"operator": "AND"|"OR", "conditions": [...]}`, nested as deep as
the query service allows (`MAX_FILTER_DEPTH` levels, `MAX_FILTER_CONDITIONS` nodes, `MAX_FILTER_LIST` values in a
list). Attributes are the chunks' metadata: a file's attributes (our upload tags) and the fields the service sets
(`file_name`, `page`, `document_id`, `file_id`...). Anything else is an `InvalidInputError` (HTTP 400) with a reason.
"""

from __future__ import annotations

from typing import Any

from app.errors import InvalidInputError
from app.services.naming import TAG_KEY_PATTERN
from app.services.query_filters import (
    MAX_FILTER_CONDITIONS,
    MAX_FILTER_DEPTH,
    MAX_FILTER_LIST,
    is_filter_scalar,
    validate_filters,
)

COMPARISONS = {"eq": "==", "ne": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "in": "in", "nin": "not in"}
COMPOUNDS = {"and": "AND", "or": "OR"}
_RANGE = {"gt", "gte", "lt", "lte"}


def translate_filters(filters: dict[str, Any] | None) -> dict[str, Any] | None:
    """The Haystack filter for an OpenAI attribute filter (None for None); InvalidInputError when it is malformed."""
    if filters is None:
        return None
    translated = _translate(filters, depth=1, budget=[MAX_FILTER_CONDITIONS])
    return validate_filters(translated)  # the query service's own checks, as a second line


def _translate(node: Any, *, depth: int, budget: list[int]) -> dict[str, Any]:
    if not isinstance(node, dict):
        raise InvalidInputError("a filter must be an object with a 'type' (a comparison or 'and'/'or')")
    budget[0] -= 1
    if budget[0] < 0:
        raise InvalidInputError(f"a filter may hold at most {MAX_FILTER_CONDITIONS} comparisons and compounds")
    kind = node.get("type")
    if kind in COMPOUNDS:
        return _compound(node, kind, depth=depth, budget=budget)
    if kind in COMPARISONS:
        return _comparison(node, kind)
    raise InvalidInputError(
        f"unknown filter type {kind!r}: use eq, ne, gt, gte, lt, lte, in, nin (comparison) or and, or (compound)"
    )


def _compound(node: dict[str, Any], kind: str, *, depth: int, budget: list[int]) -> dict[str, Any]:
    if set(node) - {"type", "filters"}:
        extra = sorted(set(node) - {"type", "filters"})
        raise InvalidInputError(f"a compound filter has only 'type' and 'filters', not {extra}")
    children = node.get("filters")
    if not isinstance(children, list) or not children:
        raise InvalidInputError(f"compound filter {kind!r} needs a non-empty list 'filters'")
    if depth > MAX_FILTER_DEPTH:
        raise InvalidInputError(f"filters may nest at most {MAX_FILTER_DEPTH} and/or levels")
    return {
        "operator": COMPOUNDS[kind],
        "conditions": [_translate(child, depth=depth + 1, budget=budget) for child in children],
    }


def _comparison(node: dict[str, Any], kind: str) -> dict[str, Any]:
    extra = set(node) - {"type", "key", "value"}
    if extra:
        raise InvalidInputError(f"a comparison filter has only 'type', 'key' and 'value', not {sorted(extra)}")
    key = node.get("key")
    if not isinstance(key, str) or not TAG_KEY_PATTERN.fullmatch(key):
        raise InvalidInputError(
            f"invalid filter key {key!r}: an attribute name of letters, digits and '_' (not starting with a digit), "
            "at most 64 characters"
        )
    if "value" not in node:
        raise InvalidInputError(f"comparison {kind!r} on {key!r} needs a 'value'")
    value = node["value"]
    if kind in ("in", "nin"):
        if not isinstance(value, list) or not value or not all(_is_list_item(v) for v in value):
            raise InvalidInputError(f"{kind!r} on {key!r} needs a non-empty list of strings or numbers")
        if len(value) > MAX_FILTER_LIST:
            raise InvalidInputError(f"{kind!r} on {key!r} takes at most {MAX_FILTER_LIST} values")
        strings = sum(isinstance(v, str) for v in value)
        if 0 < strings < len(value):
            raise InvalidInputError(f"{kind!r} on {key!r} needs a list of strings or a list of numbers, not both")
        if not strings and any(isinstance(v, float) for v in value):
            value = [float(v) for v in value]  # one type per list: a store binds it as one array (2 and 2.0 match)
    elif kind in _RANGE:
        if isinstance(value, bool) or not isinstance(value, int | float) or not is_filter_scalar(value):
            raise InvalidInputError(f"{kind!r} on {key!r} needs a number")
    elif not is_filter_scalar(value):
        raise InvalidInputError(f"{kind!r} on {key!r} needs a string, number or boolean")
    return {"field": f"meta.{key}", "operator": COMPARISONS[kind], "value": value}


def _is_list_item(value: Any) -> bool:
    return not isinstance(value, bool) and is_filter_scalar(value)
