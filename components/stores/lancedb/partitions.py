"""Which Lance table holds a document when the store is partitioned by a meta field (`partition_field`).

A partitioned store keeps the documents of each value of that field (a collection) in a table of their own,
`<table_name>__c_<value>`, and those without a value in `<table_name>` itself. Keyword (BM25) scores then count the
term statistics of that table only: LanceDB computes them over the whole table whatever the filter, so in one shared
table every collection's documents would move the others' rankings.

A filter that pins the field (`==`, `in`, or an `AND` holding such a condition) is answered from those tables only;
any other from every table of the store, the filter still applied in each.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

# Values that are already safe table-name parts (collection names are 1-64 of these) are used as they are.
_PLAIN_VALUE_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_PLAIN_MARK = "__c_"
_HASHED_MARK = "__h_"


def partition_table_name(table_name: str, value: Any) -> str:
    """The table holding the documents whose partition field is `value` (`None`, or not a string: the base table)."""
    if not isinstance(value, str):
        return table_name
    if _PLAIN_VALUE_RE.fullmatch(value):
        return f"{table_name}{_PLAIN_MARK}{value}"
    return f"{table_name}{_HASHED_MARK}{hashlib.sha256(value.encode('utf-8')).hexdigest()[:32]}"


def is_partition_table(table_name: str, name: str) -> bool:
    """Whether `name` is one of the partition tables of the store whose base table is `table_name`."""
    return name.startswith((f"{table_name}{_PLAIN_MARK}", f"{table_name}{_HASHED_MARK}"))


def pinned_values(filters: dict[str, Any] | None, field: str) -> set[Any] | None:
    """
    The values of `meta.<field>` that every document matching the (validated) `filters` has, or `None` when the filter
    does not pin them (the documents may then be in any table).

    `None` inside the set stands for documents without the field (`== None`).
    """
    if not filters:
        return None
    if "field" in filters:
        if filters["field"] != f"meta.{field}":
            return None
        value = filters["value"]
        if filters["operator"] == "==" and (value is None or isinstance(value, str)):
            return {value}
        if filters["operator"] == "in" and isinstance(value, list) and all(isinstance(v, str) for v in value):
            return set(value)
        return None
    conditions = [pinned_values(condition, field) for condition in filters.get("conditions", [])]
    if filters["operator"] == "AND":
        pinned: set[Any] | None = None
        for values in conditions:
            if values is not None:
                pinned = values if pinned is None else pinned & values
        return pinned
    if filters["operator"] == "OR" and conditions and all(values is not None for values in conditions):
        return set().union(*[values for values in conditions if values is not None])
    return None
