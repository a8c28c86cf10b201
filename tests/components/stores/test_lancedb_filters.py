"""Haystack filter → LanceDB SQL translation (pure functions; no database)."""

from __future__ import annotations

from typing import Any

import pytest
from haystack.errors import FilterError

from components.stores.lancedb_filters import (
    and_sql,
    filter_to_sql,
    in_list_sql,
    looks_like_iso_date,
    plan_filters,
    quote_identifier,
    quote_literal,
    referenced_fields,
    resolve_column,
    validate_filters,
)

PROMOTED = frozenset({"collection", "file_name"})


def _c(field: str, op: str, value: Any) -> dict[str, Any]:
    return {"field": field, "operator": op, "value": value}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain", "'plain'"),
        ("it's", "'it''s'"),
        ("''", "''''''"),
        ("' OR '1'='1", "''' OR ''1''=''1'"),
        ("back\\slash", "'back\\slash'"),
        ("日本", "'日本'"),
        ("", "''"),
    ],
)
def test_quote_literal(value: str, expected: str) -> None:
    assert quote_literal(value) == expected


def test_quote_literal_rejects_nul_and_non_str() -> None:
    with pytest.raises(ValueError):
        quote_literal("a\x00b")
    with pytest.raises(TypeError):
        quote_literal(3)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["a b", "x`y", "1abc", "a-b", "", "a.b", "drop;"])
def test_quote_identifier_rejects_non_identifiers(name: str) -> None:
    with pytest.raises(ValueError):
        quote_identifier(name)


def test_quote_identifier() -> None:
    assert quote_identifier("collection") == "`collection`"


def test_in_list_sql() -> None:
    assert in_list_sql("id", []) == "FALSE"
    assert in_list_sql("id", ["a", "b'c"]) == "`id` IN ('a', 'b''c')"


@pytest.mark.parametrize(
    ("field", "column"),
    [
        ("id", "id"),
        ("content", "content"),
        ("meta.collection", "collection"),
        ("collection", "collection"),  # legacy bare meta field
        ("meta.other", None),
        ("other", None),
        ("meta.collection.sub", None),
        ("meta", None),
        ("embedding", None),
        ("score", None),
        ("meta.id", None),
    ],
)
def test_resolve_column(field: str, column: str | None) -> None:
    assert resolve_column(field, PROMOTED) == column


@pytest.mark.parametrize(
    ("filters", "sql"),
    [
        (_c("meta.collection", "==", "a"), "(`collection` = 'a' AND `collection` IS NOT NULL)"),
        (_c("meta.collection", "!=", "a"), "NOT ((`collection` = 'a' AND `collection` IS NOT NULL))"),
        (_c("meta.collection", "==", None), "`collection` IS NULL"),
        (_c("meta.collection", "!=", None), "NOT (`collection` IS NULL)"),
        (_c("id", "in", ["x", "y", "x"]), "((`id` IN ('x', 'y') AND `id` IS NOT NULL))"),
        (_c("id", "in", ["x", None]), "((`id` IN ('x') AND `id` IS NOT NULL) OR `id` IS NULL)"),
        (_c("id", "in", [None]), "(`id` IS NULL)"),
        (_c("id", "in", []), "FALSE"),
        (_c("id", "not in", []), "NOT FALSE"),
        (_c("content", "not in", ["q"]), "NOT ((`content` IN ('q') AND `content` IS NOT NULL))"),
        (_c("meta.collection", ">", None), "FALSE"),
        (_c("meta.collection", "<=", None), "FALSE"),
        ({"operator": "AND", "conditions": []}, "TRUE"),
        ({"operator": "OR", "conditions": []}, "FALSE"),
        ({"operator": "NOT", "conditions": []}, "NOT (TRUE)"),
        (
            {"operator": "OR", "conditions": [_c("id", "==", "1"), _c("meta.file_name", "==", None)]},
            "((`id` = '1' AND `id` IS NOT NULL)) OR (`file_name` IS NULL)",
        ),
        (
            {"operator": "NOT", "conditions": [_c("id", "==", "1"), _c("collection", "==", "c")]},
            "NOT (((`id` = '1' AND `id` IS NOT NULL)) AND ((`collection` = 'c' AND `collection` IS NOT NULL)))",
        ),
    ],
)
def test_filter_to_sql(filters: dict[str, Any], sql: str) -> None:
    validate_filters(filters)
    assert filter_to_sql(filters, PROMOTED) == sql


@pytest.mark.parametrize(
    "filters",
    [
        _c("meta.other", "==", "a"),  # not promoted
        _c("meta.collection", "==", 1),  # non-string value
        _c("meta.collection", "==", True),
        _c("meta.collection", "in", ["a", 1]),
        _c("meta.collection", "==", "2024-01-01"),  # ISO date: Haystack compares as dates
        _c("meta.collection", "in", ["a", "2024-01-01T10:00:00"]),
        _c("meta.collection", ">", "a"),  # ordering on strings parses dates
        _c("meta.collection", "==", "nul\x00char"),
        {"operator": "OR", "conditions": [_c("id", "==", "1"), _c("meta.n", "==", 1)]},
    ],
)
def test_untranslatable(filters: dict[str, Any]) -> None:
    assert filter_to_sql(filters, PROMOTED) is None


def test_plan_full_sql() -> None:
    plan = plan_filters(_c("meta.collection", "==", "a"), PROMOTED)
    assert plan.sql == "(`collection` = 'a' AND `collection` IS NOT NULL)"
    assert plan.residual is None


def test_plan_empty() -> None:
    empties: list[dict[str, Any] | None] = [None, {}]
    for empty in empties:
        plan = plan_filters(empty, PROMOTED)
        assert plan.sql is None and plan.residual is None


def test_plan_splits_top_level_and() -> None:
    filters = {
        "operator": "AND",
        "conditions": [_c("meta.collection", "==", "a"), _c("meta.n", ">", 1), _c("id", "!=", "x")],
    }
    plan = plan_filters(filters, PROMOTED)
    assert (
        plan.sql == "((`collection` = 'a' AND `collection` IS NOT NULL)) AND (NOT ((`id` = 'x' AND `id` IS NOT NULL)))"
    )
    assert plan.residual == {"operator": "AND", "conditions": [_c("meta.n", ">", 1)]}


def test_plan_python_only() -> None:
    filters = {"operator": "OR", "conditions": [_c("meta.collection", "==", "a"), _c("meta.n", ">", 1)]}
    plan = plan_filters(filters, PROMOTED)
    assert plan.sql is None
    assert plan.residual == filters
    and_plan = plan_filters({"operator": "AND", "conditions": [_c("meta.n", ">", 1)]}, PROMOTED)
    assert and_plan.sql is None
    assert and_plan.residual == {"operator": "AND", "conditions": [_c("meta.n", ">", 1)]}


@pytest.mark.parametrize(
    "filters",
    [
        {"conditions": []},
        {"operator": "AND"},
        {"operator": "XOR", "conditions": []},
        {"operator": "AND", "conditions": "nope"},
        {"operator": "AND", "conditions": [{"operator": "==", "value": 1}]},
        {"field": "meta.a", "value": 1},
        {"field": "meta.a", "operator": "=="},
        {"field": "meta.a", "operator": "like", "value": 1},
        {"field": "meta.a", "operator": "in", "value": (1, 2)},
        {"field": "meta.a", "operator": "not in", "value": 1},
        {"field": "", "operator": "==", "value": 1},
        {"field": 3, "operator": "==", "value": 1},
        "not a dict",
    ],
)
def test_malformed_filters(filters: Any) -> None:
    with pytest.raises(FilterError):
        validate_filters(filters)
    with pytest.raises(FilterError):
        plan_filters(filters, PROMOTED)


def test_referenced_fields() -> None:
    filters = {
        "operator": "OR",
        "conditions": [_c("meta.a", "==", 1), {"operator": "NOT", "conditions": [_c("content", "==", "x")]}],
    }
    assert referenced_fields(filters) == {"meta.a", "content"}


def test_and_sql() -> None:
    assert and_sql(None, None) is None
    assert and_sql("a = 1", None) == "a = 1"
    assert and_sql("a = 1", "b = 2") == "(a = 1) AND (b = 2)"


@pytest.mark.parametrize(
    ("value", "iso"),
    [
        ("2024-01-01", True),
        ("2024-01-01T10:00", True),
        ("2024-01-01 10:00", True),
        ("2024", False),
        ("x", False),
        (1, False),
    ],
)
def test_looks_like_iso_date(value: Any, iso: bool) -> None:
    assert looks_like_iso_date(value) is iso
