"""`filters_missing_values`: which document stores' filters match a missing meta field with `"value": None`."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml
from haystack import Document
from haystack.document_stores.in_memory import InMemoryDocumentStore
from haystack.errors import FilterError
from haystack_integrations.document_stores.pinecone import PineconeDocumentStore
from haystack_integrations.document_stores.pinecone.filters import _normalize_filters

from components.stores.missing_values import filters_missing_values

PIPELINES = Path(__file__).resolve().parents[3] / "pipelines"
MISSING = {"field": "meta.acl", "operator": "==", "value": None}


def _shipped_store_types() -> set[str]:
    """The `type` of every document store a shipped profile builds."""
    found: set[str] = set()

    def walk(value: object) -> None:
        if isinstance(value, dict):
            kind = value.get("type")
            if isinstance(kind, str) and kind.endswith("DocumentStore"):
                found.add(kind)
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    for path in PIPELINES.rglob("*.yml"):
        walk(yaml.safe_load(path.read_text(encoding="utf-8")))
    return found


def _class(path: str) -> type:
    module, _, name = path.rpartition(".")
    cls: type = getattr(importlib.import_module(module), name)
    return cls


def test_every_shipped_store_but_pinecone_matches_missing_values():
    """A store renamed or added to a profile must be classified here: listed by mistake, its scoped queries fail;
    left out by mistake, chunks indexed before access lists disappear for scoped keys."""
    types = _shipped_store_types()
    assert {t.rpartition(".")[2] for t in types} == {
        "LanceDBDocumentStore",
        "PooledPgvectorDocumentStore",
        "EnvWeaviateDocumentStore",
        "PineconeDocumentStore",
    }
    answers = {t.rpartition(".")[2]: filters_missing_values(object.__new__(_class(t))) for t in types}
    assert answers == {
        "LanceDBDocumentStore": True,
        "PooledPgvectorDocumentStore": True,  # a subclass of the listed PgvectorDocumentStore
        "EnvWeaviateDocumentStore": True,
        "PineconeDocumentStore": False,
    }


def test_the_answer_matches_what_the_store_accepts():
    assert filters_missing_values(InMemoryDocumentStore())
    store = InMemoryDocumentStore()
    store.write_documents([Document(id="old", content="indexed before access lists", meta={"collection": "c"})])
    assert [d.id for d in store.filter_documents(MISSING)] == ["old"]

    assert not filters_missing_values(object.__new__(PineconeDocumentStore))
    with pytest.raises(FilterError):
        _normalize_filters(MISSING)


def test_a_store_it_does_not_know_has_none():
    class HomeMadeStore:
        def filter_documents(self, filters=None):
            return []

    assert not filters_missing_values(HomeMadeStore())
    assert not filters_missing_values(None)
