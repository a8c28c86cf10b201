"""Aggregates over the stored meta dicts, behind the store's metadata queries (`count_unique_metadata_by_filter`...)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pyarrow as pa


def count_unique(metas: list[dict[str, Any]], metadata_fields: Iterable[str]) -> dict[str, int]:
    """`{field name without "meta.": number of distinct non-null values}`."""
    result: dict[str, int] = {}
    for field in metadata_fields:
        key = field.removeprefix("meta.")
        values = {_hashable(m[key]) for m in metas if m.get(key) is not None}
        result[key] = len(values)
    return result


def grouped_counts_of_columns(rows: pa.Table, group: str, unique: list[str]) -> dict[Any, dict[str, int]]:
    """`grouped_counts` over promoted meta columns: one Arrow group-by of `rows` (holding the group and unique columns).

    Rows whose group column is null are in no group.
    """
    aggregated = rows.group_by(group).aggregate([([], "count_all"), *((field, "count_distinct") for field in unique)])
    keys = aggregated.column(group).to_pylist()
    sizes = aggregated.column("count_all").to_pylist()
    distinct = {field: aggregated.column(f"{field}_count_distinct").to_pylist() for field in unique}
    return {
        key: {"count": int(sizes[i]), **{field: int(values[i]) for field, values in distinct.items()}}
        for i, key in enumerate(keys)
        if key is not None
    }


def grouped_counts(metas: Iterable[dict[str, Any]], group: str, unique: list[str]) -> dict[Any, dict[str, int]]:
    """`grouped_counts` over meta dicts (fields that are not promoted columns): one pass.

    Documents without the group field (or `None` in it) are in no group; a group value that is a list or a dict is
    the key in its hashable form (`_hashable`).
    """
    sizes: dict[Any, int] = {}
    seen: dict[Any, dict[str, set[Any]]] = {}
    for meta in metas:
        value = meta.get(group)
        if value is None:
            continue
        key = _hashable(value)
        sizes[key] = sizes.get(key, 0) + 1
        per_field = seen.setdefault(key, {field: set() for field in unique})
        for field in unique:
            if meta.get(field) is not None:
                per_field[field].add(_hashable(meta[field]))
    return {key: {"count": size, **{f: len(v) for f, v in seen[key].items()}} for key, size in sizes.items()}


def field_types(metas: Iterable[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """`{meta field: {"type": "keyword" | "int" | "float" | "boolean"}}`, from the last non-null value seen."""
    type_map: dict[str, str] = {}
    for meta in metas:
        for key, value in meta.items():
            if value is None:
                continue
            if isinstance(value, bool):
                type_map[key] = "boolean"
            elif isinstance(value, int):
                type_map[key] = "int"
            elif isinstance(value, float):
                type_map[key] = "float"
            else:
                type_map[key] = "keyword"
    return {k: {"type": v} for k, v in type_map.items()}


def min_max(metas: Iterable[dict[str, Any]], metadata_field: str) -> dict[str, Any]:
    """`{"min": ..., "max": ...}` of a meta field (`None`s if absent or not comparable)."""
    key = metadata_field.removeprefix("meta.")
    values = [m[key] for m in metas if m.get(key) is not None and isinstance(m[key], int | float | str)]
    if not values:
        return {"min": None, "max": None}
    try:
        return {"min": min(values), "max": max(values)}
    except TypeError:
        return {"min": None, "max": None}


def unique_values(
    metas: Iterable[dict[str, Any]], metadata_field: str, search_term: str | None, from_: int, size: int
) -> tuple[list[Any], int]:
    """A page of the distinct values of a meta field, sorted by their string form, and how many there are."""
    key = metadata_field.removeprefix("meta.")
    unique: dict[tuple[str, Any], Any] = {}
    for meta in metas:
        value = meta.get(key)
        if value is not None:
            unique.setdefault((type(value).__name__, _hashable(value)), value)
    if search_term:
        needle = search_term.lower()
        unique = {k: v for k, v in unique.items() if needle in str(v).lower()}
    ordered = sorted(unique, key=lambda k: (str(unique[k]), k[0]))
    return [unique[k] for k in ordered[from_ : from_ + size]], len(ordered)


def _hashable(value: Any) -> Any:
    """Turn nested JSON values into hashable ones for counting distinct values."""
    if isinstance(value, list):
        return ("list", tuple(_hashable(v) for v in value))
    if isinstance(value, dict):
        return ("dict", frozenset((k, _hashable(v)) for k, v in value.items()))
    return value
