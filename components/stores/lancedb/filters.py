"""Haystack metadata filters on the LanceDB table: SQL pushdown plus a Python residual.

Only the subset of the Haystack filter language whose SQL meaning is *exactly* the Python meaning of
:func:`haystack.utils.filters.document_matches_filter` is translated. Everything else is reported as
"not translatable" and the caller evaluates it in Python.

A leaf is translatable when:

* its field is ``id``, ``content`` or a promoted meta column (``meta.<name>`` or the legacy bare ``<name>``),
  whose stored values are always ``str`` or ``NULL``;
* its operator is ``==``, ``!=``, ``in`` or ``not in`` with a ``str``/``None`` value (a list of them for
  ``in``/``not in``), where no string looks like an ISO 8601 date (Haystack compares those as dates); or
  ``>``, ``>=``, ``<``, ``<=`` with a ``None`` value (always false in Haystack).

Every translated leaf evaluates to ``TRUE`` or ``FALSE``, never ``NULL``: a comparison is written as
``(x = 'a' AND x IS NOT NULL)``, which is ``FALSE`` (not ``NULL``) for a missing ``x``, the same as
``COALESCE(x = 'a', FALSE)`` but still usable by LanceDB's scalar indices. So ``NOT`` and ``OR`` keep Python's
two-valued semantics: ``!=`` matches missing values, ``NOT (x == 'a')`` matches rows where ``x`` is missing, etc.

:func:`plan_filters` splits a filter into the SQL part and the residual; :func:`select_rows`, :func:`matching_ids`
and :func:`filtered_search` apply such a plan to the table, evaluating the residual with Haystack's own
``document_matches_filter`` on the rows the SQL part selected.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, cast

import pyarrow as pa
import pyarrow.compute as pc
from haystack.dataclasses import Document
from haystack.errors import FilterError
from haystack.utils.filters import document_matches_filter

from components.stores.lancedb.converters import BASE_COLUMNS, arrow_to_documents

COMPARISON_OPERATORS = frozenset({"==", "!=", ">", ">=", "<", "<=", "in", "not in"})
LOGICAL_OPERATORS = frozenset({"AND", "OR", "NOT"})
_ORDERING_OPERATORS = frozenset({">", ">=", "<", "<="})

#: Top-level Document attributes; a bare field name that is not one of them refers to ``meta``.
DOCUMENT_FIELDS = frozenset(f.name for f in fields(Document))

#: Identifiers we are willing to put in SQL (promoted meta field names are validated against this).
IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Characters that are not safe inside a SQL string literal for every engine layer (NUL terminates C strings).
_UNSAFE_LITERAL_CHARS = ("\x00",)

# An `id IN (...)` list longer than this is slow to parse and evaluate: bigger id sets are handled by
# over-fetching from the search and filtering in Python.
_MAX_IN_IDS = 1000


@dataclass(frozen=True)
class FilterPlan:
    """How a filter is evaluated.

    :param sql: A SQL predicate to push down to LanceDB (``None``: no pushdown, every row is a candidate).
    :param residual: A Haystack filter to evaluate in Python on the rows selected by ``sql``
        (``None``: ``sql`` is exact).
    """

    sql: str | None
    residual: dict[str, Any] | None


def quote_literal(value: str) -> str:
    """Return ``value`` as a SQL string literal, with single quotes doubled.

    :raises ValueError: if the value contains a character that cannot be embedded safely.
    """
    if not isinstance(value, str):
        raise TypeError(f"SQL string literal must be a str, got {type(value).__name__}")
    if any(ch in value for ch in _UNSAFE_LITERAL_CHARS):
        raise ValueError("SQL string literal contains a NUL character")
    return "'" + value.replace("'", "''") + "'"


def quote_identifier(name: str) -> str:
    """Return a column name quoted for LanceDB SQL. Only plain identifiers are accepted.

    :raises ValueError: if ``name`` is not a plain identifier.
    """
    if not IDENTIFIER_RE.fullmatch(name):
        raise ValueError(f"Invalid column name {name!r}: use letters, digits and underscores only")
    return f"`{name}`"


def in_list_sql(column: str, values: list[str]) -> str:
    """Return ``column IN ('a', 'b', ...)`` (``FALSE`` for an empty list), with every value escaped."""
    if not values:
        return "FALSE"
    return f"{quote_identifier(column)} IN ({', '.join(quote_literal(v) for v in values)})"


def looks_like_iso_date(value: Any) -> bool:
    """Mirror of Haystack's cheap ISO-date check: such strings are compared as dates by Haystack, not as text."""
    return (
        isinstance(value, str)
        and len(value) >= 10
        and value[:4].isdigit()
        and value[4] == "-"
        and value[5:7].isdigit()
        and value[7] == "-"
        and value[8:10].isdigit()
        and (len(value) == 10 or value[10] in {"T", "t", " "})
    )


def validate_filters(filters: dict[str, Any]) -> None:
    """Check the structure of a Haystack filter, recursively.

    Value types are checked only where Haystack rejects them regardless of the stored data
    (``in``/``not in`` need a list); ordering comparisons are left to the evaluator.

    :raises FilterError: if the filter is malformed.
    """
    if not isinstance(filters, dict):
        raise FilterError(f"A filter must be a dictionary, got {type(filters).__name__}")
    if "field" in filters:
        _validate_comparison(filters)
        return
    if "operator" not in filters:
        raise FilterError(f"'operator' key missing in {filters}")
    if "conditions" not in filters:
        raise FilterError(f"'conditions' key missing in {filters}")
    operator = filters["operator"]
    if operator not in LOGICAL_OPERATORS:
        raise FilterError(f"Unknown logical operator '{operator}'. Valid operators are: {sorted(LOGICAL_OPERATORS)}")
    conditions = filters["conditions"]
    if not isinstance(conditions, list):
        raise FilterError(f"'conditions' must be a list, got {type(conditions).__name__}")
    for condition in conditions:
        validate_filters(condition)


def _validate_comparison(condition: dict[str, Any]) -> None:
    if not isinstance(condition["field"], str) or not condition["field"]:
        raise FilterError(f"'field' must be a non-empty string in {condition}")
    if "operator" not in condition:
        raise FilterError(f"'operator' key missing in {condition}")
    if "value" not in condition:
        raise FilterError(f"'value' key missing in {condition}")
    operator = condition["operator"]
    if operator not in COMPARISON_OPERATORS:
        raise FilterError(
            f"Unknown comparison operator '{operator}'. Valid operators are: {sorted(COMPARISON_OPERATORS)}"
        )
    if operator in ("in", "not in") and not isinstance(condition["value"], list):
        raise FilterError(
            "Filter value must be a `list` when using operator 'in' or 'not in', "
            f"received type '{type(condition['value'])}'"
        )


def resolve_column(field: str, promoted_fields: frozenset[str] | set[str]) -> str | None:
    """Return the table column that holds ``field`` exactly as Haystack reads it, or ``None``.

    ``id`` and ``content`` are top-level columns; ``meta.<name>`` and the legacy bare ``<name>`` map to a
    promoted column when ``<name>`` is promoted. Nested meta paths (``meta.a.b``) never map to a column.
    """
    if field in ("id", "content"):
        return field
    if field.startswith("meta."):
        name = field[len("meta.") :]
        return name if name in promoted_fields and "." not in name else None
    if "." not in field and field not in DOCUMENT_FIELDS and field in promoted_fields:
        return field
    return None


def _is_sql_text(value: Any) -> bool:
    return (
        isinstance(value, str) and not looks_like_iso_date(value) and not any(c in value for c in _UNSAFE_LITERAL_CHARS)
    )


def _leaf_to_sql(condition: dict[str, Any], promoted_fields: frozenset[str] | set[str]) -> str | None:
    column = resolve_column(condition["field"], promoted_fields)
    if column is None:
        return None
    operator: str = condition["operator"]
    value = condition["value"]
    col = quote_identifier(column)

    if operator in _ORDERING_OPERATORS:
        # Haystack: comparing with None is always False; anything else parses strings as dates.
        return "FALSE" if value is None else None
    if operator in ("==", "!="):
        if value is None:
            sql = f"{col} IS NULL"
        elif _is_sql_text(value):
            sql = f"({col} = {quote_literal(value)} AND {col} IS NOT NULL)"
        else:
            return None
        return sql if operator == "==" else f"NOT ({sql})"
    # in / not in (value validated to be a list)
    if not isinstance(value, list):
        return None
    has_none = any(v is None for v in value)
    texts = [v for v in value if v is not None]
    if not all(_is_sql_text(v) for v in texts):
        return None
    parts: list[str] = []
    if texts:
        unique = list(dict.fromkeys(texts))
        parts.append(f"({col} IN ({', '.join(quote_literal(v) for v in unique)}) AND {col} IS NOT NULL)")
    if has_none:
        parts.append(f"{col} IS NULL")
    sql = "(" + " OR ".join(parts) + ")" if parts else "FALSE"
    return sql if operator == "in" else f"NOT {sql}"


def filter_to_sql(filters: dict[str, Any], promoted_fields: frozenset[str] | set[str]) -> str | None:
    """Translate a (validated) filter to SQL, or return ``None`` if any part of it is not translatable."""
    if "field" in filters:
        return _leaf_to_sql(filters, promoted_fields)
    operator = filters["operator"]
    parts: list[str] = []
    for condition in filters["conditions"]:
        sql = filter_to_sql(condition, promoted_fields)
        if sql is None:
            return None
        parts.append(f"({sql})")
    if operator == "AND":
        return " AND ".join(parts) if parts else "TRUE"
    if operator == "OR":
        return " OR ".join(parts) if parts else "FALSE"
    # NOT: negation of the conjunction, as in haystack.utils.filters._not
    return f"NOT ({' AND '.join(parts) if parts else 'TRUE'})"


def plan_filters(filters: dict[str, Any] | None, promoted_fields: frozenset[str] | set[str]) -> FilterPlan:
    """Validate ``filters`` and split them into a SQL pushdown part and a Python residual.

    * Fully translatable → ``FilterPlan(sql, None)``.
    * Top-level ``AND`` with some translatable conditions → SQL for those, the rest as an ``AND`` residual.
    * Otherwise → ``FilterPlan(None, filters)``.

    :raises FilterError: if the filter is malformed.
    """
    if not filters:
        return FilterPlan(None, None)
    validate_filters(filters)
    sql = filter_to_sql(filters, promoted_fields)
    if sql is not None:
        return FilterPlan(sql, None)
    if "field" not in filters and filters["operator"] == "AND":
        sql_parts: list[str] = []
        rest: list[dict[str, Any]] = []
        for condition in filters["conditions"]:
            part = filter_to_sql(condition, promoted_fields)
            if part is None:
                rest.append(condition)
            else:
                sql_parts.append(f"({part})")
        residual: dict[str, Any] = {"operator": "AND", "conditions": rest}
        return FilterPlan(" AND ".join(sql_parts) if sql_parts else None, residual)
    return FilterPlan(None, filters)


def referenced_fields(filters: dict[str, Any]) -> set[str]:
    """Return every ``field`` named in a (validated) filter."""
    if "field" in filters:
        return {filters["field"]}
    out: set[str] = set()
    for condition in filters.get("conditions", []):
        out |= referenced_fields(condition)
    return out


def and_sql(*parts: str | None) -> str | None:
    """Combine SQL predicates with ``AND``, ignoring ``None`` parts; ``None`` if nothing is left."""
    present = [p for p in parts if p]
    if not present:
        return None
    if len(present) == 1:
        return present[0]
    return " AND ".join(f"({p})" for p in present)


def require_filters(filters: dict[str, Any], operation: str, alternative: str) -> None:
    """Refuse an empty filter for a destructive operation.

    :raises FilterError: naming `alternative`, the call that does what an empty filter would.
    """
    if not filters:
        raise FilterError(f"{operation} needs a non-empty filter; use {alternative} instead")


# ---------------------------------------------------------------------- applying a plan to the table


def scan(table: Any, columns: list[str], where: str | None) -> pa.Table:
    """Return `columns` of the rows matching the SQL predicate `where` (all rows if `None`)."""
    builder = table.search().select(columns)
    if where:
        builder = builder.where(where)
    return builder.to_arrow()


def select_rows(table: Any, plan: FilterPlan, columns: list[str], embedding_dim: int) -> pa.Table:
    """Return the rows matching `plan` (SQL pushdown, then the Python residual) with `columns`."""
    if plan.residual is None:
        return scan(table, columns, plan.sql)
    eval_columns = residual_columns(plan.residual)
    rows = scan(table, sorted(set(columns) | set(eval_columns)), plan.sql)
    mask = residual_mask(rows, plan.residual, embedding_dim)
    return rows.filter(pa.array(mask, type=pa.bool_())).select(columns)


def matching_ids(table: Any, plan: FilterPlan, embedding_dim: int) -> list[str]:
    """Return the ids (in table order) of the rows matching `plan`."""
    if plan.residual is None:
        return scan(table, ["id"], plan.sql).column("id").to_pylist()
    rows = scan(table, residual_columns(plan.residual), plan.sql)
    mask = residual_mask(rows, plan.residual, embedding_dim)
    ids = rows.column("id").to_pylist()
    return [i for i, keep in zip(ids, mask, strict=True) if keep]


def filtered_search(
    table: Any,
    search: Callable[[str | None, int], pa.Table],
    plan: FilterPlan,
    top_k: int,
    embedding_dim: int,
) -> pa.Table | None:
    """
    Run `search(where, limit)` so that its best `top_k` rows all match `plan` (`None`: nothing can match).

    SQL-only plans are pushed down. With a Python residual, the matching ids are computed first: a small id
    set is pushed down as `id IN (...)`; a large one is applied to over-fetched search results, fetching more
    until `top_k` matches are found or the search is exhausted.
    """
    if plan.residual is None:
        return search(plan.sql, top_k)
    allowed = matching_ids(table, plan, embedding_dim)
    if not allowed:
        return None
    if len(allowed) <= _MAX_IN_IDS:
        return search(and_sql(plan.sql, in_list_sql("id", allowed)), top_k)
    allowed_set = set(allowed)
    candidates = int(table.count_rows(plan.sql)) if plan.sql else int(table.count_rows())
    ratio = len(allowed) / max(candidates, 1)
    limit = min(max(top_k * 2, math.ceil(top_k / ratio * 1.5)), max(candidates, top_k))
    while True:
        rows = search(plan.sql, limit)
        ids = rows.column("id").to_pylist()
        mask = [i in allowed_set for i in ids]
        hits = rows.filter(pa.array(mask, type=pa.bool_()))
        if hits.num_rows >= top_k or rows.num_rows < limit or limit >= candidates:
            return hits.slice(0, top_k)
        limit = min(limit * 4, candidates)


# ---------------------------------------------------------------------- the Python residual


def residual_columns(residual: dict[str, Any]) -> list[str]:
    """Columns needed to evaluate `residual` in Python."""
    needed = {"id", "meta_json"}
    roots = {f.split(".", 1)[0] for f in referenced_fields(residual)}
    if "content" in roots:
        needed.add("content")
    if roots & {"blob", "embedding", "sparse_embedding"}:
        needed.update(BASE_COLUMNS)
    return sorted(needed)


def residual_mask(rows: pa.Table, residual: dict[str, Any], embedding_dim: int) -> list[bool]:
    """Evaluate `residual` with Haystack's `document_matches_filter` on each row (of `residual_columns`)."""
    if "embedding" in rows.column_names:  # the filter reads blob/embedding/sparse fields: full documents
        docs = arrow_to_documents(rows, embedding_dim=embedding_dim, include_embedding=True)
        return [document_matches_filter(residual, doc) for doc in docs]
    return _python_mask(rows, residual)


_WHOLE_META = "\x00whole-meta"


def _meta_keys(filters: dict[str, Any]) -> set[str]:
    """Top-level meta keys a filter reads (`_WHOLE_META` if it reads `meta` itself)."""
    keys: set[str] = set()
    for field in referenced_fields(filters):
        if field.startswith("meta."):
            keys.add(field[len("meta.") :].split(".", 1)[0])
        elif field == "meta":
            keys.add(_WHOLE_META)
        elif "." not in field and field not in DOCUMENT_FIELDS:
            keys.add(field)  # legacy field name without the "meta." prefix
    return keys


@dataclass(slots=True)
class _FilterView:
    """
    A light stand-in for a Document, with the same field names, for `document_matches_filter`.

    Building 100k real Documents costs ~0.3 s more than these (`__init__`, `__post_init__`, mutation guards);
    they are only read by the filter and never returned.
    """

    id: str
    content: str | None
    meta: dict[str, Any]
    blob: None = None
    score: None = None
    embedding: None = None
    sparse_embedding: None = None


def _python_mask(rows: pa.Table, residual: dict[str, Any]) -> list[bool]:
    """
    Evaluate `residual` on rows holding `id`, `meta_json` and, if the filter reads it, `content`.

    The meta JSON is parsed only for rows whose text contains one of the filter's meta keys (as written by
    `json.dumps`, `"key": `). In the other rows every key the filter reads is missing, so, unless the filter also
    reads `id` or `content`, they all get the result of the filter on an empty document, computed once.
    """
    n = rows.num_rows
    meta_keys = _meta_keys(residual)
    meta_column = rows.column("meta_json")
    if _WHOLE_META in meta_keys:
        present = [True] * n
    elif not meta_keys:
        present = [False] * n
    else:
        mask = None
        for key in meta_keys:
            hit = pc.match_substring(meta_column, json.dumps(key, ensure_ascii=False) + ":")
            mask = hit if mask is None else pc.or_(mask, hit)
        present = [bool(v) for v in mask.to_pylist()] if mask is not None else [False] * n

    row_specific = bool(referenced_fields(residual) & {"id", "content"})
    constant: bool | None = None
    if not row_specific and not all(present):
        constant = document_matches_filter(residual, cast(Any, _FilterView(id="", content=None, meta={})))
    if constant is not None and not any(present):
        return [constant] * n

    ids = rows.column("id").to_pylist()
    raw = meta_column.to_pylist()
    contents = rows.column("content").to_pylist() if "content" in rows.column_names else [None] * n
    out: list[bool] = []
    for i in range(n):
        if not present[i] and constant is not None:
            out.append(constant)
            continue
        meta = json.loads(raw[i]) if present[i] and raw[i] else {}
        view = _FilterView(id=ids[i], content=contents[i], meta=meta)
        out.append(document_matches_filter(residual, cast(Any, view)))
    return out
