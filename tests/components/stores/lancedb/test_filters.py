"""Haystack filters on the LanceDB store: SQL translation (pure functions), then SQL path and Python residual
evaluated by a real store against Haystack's own `document_matches_filter`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from haystack import Document
from haystack.dataclasses import ByteStream
from haystack.errors import FilterError
from haystack.utils.filters import document_matches_filter

from components.stores.lancedb import LanceDBDocumentStore
from components.stores.lancedb.filters import (
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


# ----------------------------------------------------------------------------------------------- on a real store

DIM = 8


@pytest.fixture
def store(tmp_path: Path) -> LanceDBDocumentStore:
    return LanceDBDocumentStore(path=str(tmp_path / "db"), embedding_dim=DIM)


_FILTER_DOCS = [
    Document(id="d1", content="alpha", meta={"collection": "a", "file_name": "x.pdf", "n": 1}, embedding=[0.5] * DIM),
    Document(
        id="d2",
        content="beta",
        meta={"collection": "b", "file_name": "y.pdf", "n": 2},
        blob=ByteStream(data=b"%PDF", mime_type="application/pdf"),
    ),
    Document(id="d3", content="gamma", meta={"collection": "it's", "n": 3}),
    Document(id="d4", content=None, meta={"collection": None, "file_name": "x.pdf"}),
    Document(id="d5", content="delta", meta={}),
    Document(id="d6", content="epsilon", meta={"collection": "a\\b", "file_name": ""}),
    Document(id="d7", content="it's", meta={"collection": "ümlaut 日本", "n": 7}),
    Document(id="d8", content="zeta", meta={"collection": "' OR '1'='1", "n": 8}),
    Document(id="d9", content="eta", meta={"collection": "2024-01-01", "n": 9}),
    Document(id="d10", content="theta", meta={"collection": "A", "n": 10}),
    Document(id="d11", content="2024-01-01", meta={"sparse": "x", 'we"ird': 1, "nest": {"a": 1}, "n": 11}),
    Document(id="d12", content="iota", meta={"ключ": 5, "note": 'has "sparse": inside'}),
]


# Filters that are fully translated to SQL when `collection`/`file_name` are promoted.
_SQL_FILTERS: list[dict[str, Any]] = [
    _c("meta.collection", "==", "a"),
    _c("meta.collection", "==", "it's"),
    _c("meta.collection", "==", "' OR '1'='1"),
    _c("meta.collection", "==", "a\\b"),
    _c("meta.collection", "==", "ümlaut 日本"),
    _c("meta.collection", "==", None),
    _c("meta.collection", "!=", "a"),
    _c("meta.collection", "!=", None),
    _c("meta.collection", "in", ["a", "b", "nope"]),
    _c("meta.collection", "in", ["a", None]),
    _c("meta.collection", "in", []),
    _c("meta.collection", "not in", ["a", "b"]),
    _c("meta.collection", "not in", [None]),
    _c("meta.collection", "not in", []),
    _c("meta.collection", ">", None),
    _c("meta.file_name", "==", ""),
    _c("collection", "==", "b"),  # legacy field without the meta. prefix
    _c("id", "==", "d3"),
    _c("id", "in", ["d1", "d9", "zz"]),
    _c("content", "==", "it's"),
    _c("content", "!=", "alpha"),
    _c("content", "==", None),
    {"operator": "NOT", "conditions": [_c("meta.collection", "==", "a")]},
    {"operator": "NOT", "conditions": [_c("meta.collection", "in", ["a", "b"]), _c("meta.file_name", "==", "x.pdf")]},
    {"operator": "OR", "conditions": [_c("meta.collection", "==", "a"), _c("meta.file_name", "==", "x.pdf")]},
    {"operator": "AND", "conditions": [_c("meta.collection", "!=", "b"), _c("meta.file_name", "!=", None)]},
    {
        "operator": "OR",
        "conditions": [
            {"operator": "NOT", "conditions": [_c("meta.file_name", "!=", "x.pdf")]},
            {"operator": "AND", "conditions": [_c("id", "!=", "d1"), _c("meta.collection", "==", None)]},
        ],
    },
    {"operator": "AND", "conditions": []},
    {"operator": "OR", "conditions": []},
    {"operator": "NOT", "conditions": []},
]

# Filters that need Python (ISO dates, non-string values, unpromoted fields), fully or partly.
_PYTHON_FILTERS: list[dict[str, Any]] = [
    _c("meta.collection", "==", "2024-01-01T00:00:00"),  # compared as a date by Haystack
    _c("meta.collection", "==", 1),
    _c("meta.n", ">", 3),
    _c("meta.n", "in", [1, 2, 10]),
    {"operator": "AND", "conditions": [_c("meta.collection", "==", "a"), _c("meta.n", "==", 1)]},
    {"operator": "AND", "conditions": [_c("meta.collection", "!=", "b"), _c("meta.n", "<", 8)]},
    {"operator": "OR", "conditions": [_c("meta.collection", "==", "b"), _c("meta.n", ">=", 9)]},
    {"operator": "NOT", "conditions": [_c("meta.n", "==", 7)]},
    # keys present on few documents (rows without the key are evaluated without parsing their meta)
    _c("meta.sparse", "!=", "x"),
    _c("meta.sparse", "==", None),
    _c("meta.sparse", "==", "x"),
    _c("sparse", "not in", ["x"]),
    _c('meta.we"ird', "==", 1),
    _c("meta.nest.a", "==", 1),
    _c("meta.nest.a", "!=", 1),
    _c("meta.ключ", ">", 1),
    _c("meta", "==", {}),
    _c("content", "==", "2024-01-01T00:00"),
    # Document fields other than id/content/meta: evaluated on full documents
    _c("embedding", "==", None),
    _c("embedding", "!=", None),
    {"operator": "AND", "conditions": [_c("meta.collection", "==", "b"), _c("blob", "!=", None)]},
    {"operator": "OR", "conditions": [_c("meta.sparse", "==", "x"), _c("meta.ключ", "==", 5)]},
]


@pytest.fixture(scope="module")
def filter_stores(tmp_path_factory: pytest.TempPathFactory) -> tuple[LanceDBDocumentStore, LanceDBDocumentStore]:
    base = tmp_path_factory.mktemp("filters")
    promoted = LanceDBDocumentStore(
        path=str(base / "promoted"), embedding_dim=DIM, indexed_meta_fields=["collection", "file_name"]
    )
    plain = LanceDBDocumentStore(path=str(base / "plain"), embedding_dim=DIM, indexed_meta_fields=[])
    promoted.write_documents(_FILTER_DOCS)
    plain.write_documents(_FILTER_DOCS)
    return promoted, plain


def _expected_ids(filters: dict[str, Any]) -> list[str]:
    return sorted(d.id for d in _FILTER_DOCS if document_matches_filter(filters, d))


@pytest.mark.parametrize("filters", _SQL_FILTERS, ids=repr)
def test_sql_path_matches_python_semantics(
    filter_stores: tuple[LanceDBDocumentStore, LanceDBDocumentStore], filters: dict[str, Any]
) -> None:
    promoted, plain = filter_stores
    assert plan_filters(filters, frozenset(promoted.indexed_meta_fields)).residual is None  # really SQL
    expected = _expected_ids(filters)
    assert sorted(d.id for d in promoted.filter_documents(filters)) == expected
    assert sorted(d.id for d in plain.filter_documents(filters)) == expected
    assert promoted.count_documents_by_filter(filters) == len(expected)


@pytest.mark.parametrize("filters", _PYTHON_FILTERS, ids=repr)
def test_python_path_matches_python_semantics(
    filter_stores: tuple[LanceDBDocumentStore, LanceDBDocumentStore], filters: dict[str, Any]
) -> None:
    promoted, plain = filter_stores
    assert plan_filters(filters, frozenset(promoted.indexed_meta_fields)).residual is not None
    expected = _expected_ids(filters)
    assert sorted(d.id for d in promoted.filter_documents(filters)) == expected
    assert sorted(d.id for d in plain.filter_documents(filters)) == expected
    assert promoted.count_documents_by_filter(filters) == len(expected)


def test_injection_attempt_matches_only_its_literal(
    filter_stores: tuple[LanceDBDocumentStore, LanceDBDocumentStore],
) -> None:
    promoted, _ = filter_stores
    got = promoted.filter_documents(_c("meta.collection", "==", "x' OR '1'='1"))
    assert got == []
    assert [d.id for d in promoted.filter_documents(_c("meta.collection", "==", "' OR '1'='1"))] == ["d8"]


@pytest.mark.parametrize(
    "filters",
    [
        {"conditions": [_c("meta.collection", "==", "a")]},
        {"operator": "AND"},
        {"operator": "XOR", "conditions": []},
        {"field": "meta.collection", "operator": "~", "value": "a"},
        {"field": "meta.collection", "value": "a"},
        {"field": "meta.collection", "operator": "=="},
        {"field": "meta.collection", "operator": "in", "value": "a"},
    ],
)
def test_malformed_filters_raise(store: LanceDBDocumentStore, filters: dict[str, Any]) -> None:
    store.write_documents([Document(content="x")])
    with pytest.raises(FilterError):
        store.filter_documents(filters)
    with pytest.raises(FilterError):
        store.embedding_retrieval([1.0] * DIM, filters=filters)
    with pytest.raises(FilterError):
        store.bm25_retrieval("x", filters=filters)
