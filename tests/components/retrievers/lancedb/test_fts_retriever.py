"""LanceDBFTSRetriever: init validation, serialization, filters and filter policy, async, YAML pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from haystack import Document, Pipeline
from haystack.core.errors import DeserializationError
from haystack.document_stores.in_memory import InMemoryDocumentStore
from haystack.document_stores.types import FilterPolicy

from components.retrievers.lancedb.fts_retriever import LanceDBFTSRetriever
from components.stores.lancedb.document_store import LanceDBDocumentStore

TYPE = "components.retrievers.lancedb.fts_retriever.LanceDBFTSRetriever"
STORE_TYPE = "components.stores.lancedb.document_store.LanceDBDocumentStore"


def _c(field: str, op: str, value: Any) -> dict[str, Any]:
    return {"field": field, "operator": op, "value": value}


@pytest.fixture
def store(tmp_path: Path) -> LanceDBDocumentStore:
    s = LanceDBDocumentStore(path=str(tmp_path / "db"), embedding_dim=4)
    s.write_documents(
        [
            Document(id="en-r", content="R is a language for statistics", meta={"collection": "a", "lang": "en"}),
            Document(id="de-r", content="R ist eine Sprache für Statistik", meta={"collection": "a", "lang": "de"}),
            Document(id="en-py", content="Python is a programming language", meta={"collection": "b", "lang": "en"}),
            Document(id="en-go", content="Go is a compiled language", meta={"collection": "b", "lang": "en"}),
        ]
    )
    return s


def test_init_defaults(store: LanceDBDocumentStore) -> None:
    r = LanceDBFTSRetriever(document_store=store)
    assert (r.top_k, r.filters, r.filter_policy) == (10, None, FilterPolicy.REPLACE)


@pytest.mark.parametrize("top_k", [0, -5, False])
def test_init_rejects_bad_top_k(store: LanceDBDocumentStore, top_k: Any) -> None:
    with pytest.raises(ValueError):
        LanceDBFTSRetriever(document_store=store, top_k=top_k)


def test_init_rejects_other_store() -> None:
    with pytest.raises(TypeError):
        LanceDBFTSRetriever(document_store=InMemoryDocumentStore())  # type: ignore[arg-type]


def test_to_dict_from_dict_round_trip(store: LanceDBDocumentStore) -> None:
    r = LanceDBFTSRetriever(document_store=store, filters=_c("meta.lang", "==", "en"), top_k=2, filter_policy="merge")
    data = r.to_dict()
    assert data == {
        "type": TYPE,
        "init_parameters": {
            "document_store": store.to_dict(),
            "filters": _c("meta.lang", "==", "en"),
            "top_k": 2,
            "filter_policy": "merge",
        },
    }
    restored = LanceDBFTSRetriever.from_dict(data)
    assert restored.to_dict() == data
    assert restored.filter_policy == FilterPolicy.MERGE
    assert restored.document_store.path == store.path


def test_from_dict_rejects_foreign_store() -> None:
    foreign = {"type": "some.other.Store", "init_parameters": {}}
    with pytest.raises(DeserializationError):
        LanceDBFTSRetriever.from_dict({"type": TYPE, "init_parameters": {"document_store": foreign}})


def test_run(store: LanceDBDocumentStore) -> None:
    docs = LanceDBFTSRetriever(document_store=store).run(query="statistics language")["documents"]
    assert docs[0].id == "en-r"
    assert {d.id for d in docs} == {"en-r", "en-py", "en-go"}
    scores = [d.score for d in docs if d.score is not None]
    assert len(scores) == len(docs) and all(s > 0 for s in scores)
    assert scores == sorted(scores, reverse=True)


def test_run_top_k(store: LanceDBDocumentStore) -> None:
    r = LanceDBFTSRetriever(document_store=store, top_k=1)
    assert len(r.run(query="language")["documents"]) == 1
    assert len(r.run(query="language", top_k=3)["documents"]) == 3
    with pytest.raises(ValueError):
        r.run(query="language", top_k=-1)


@pytest.mark.parametrize("query", ["", "   ", "?!()", 'what\'s "R"? (data-frame) AND OR NOT', "a:b ^2 ~ * [x TO y]"])
def test_run_odd_queries_do_not_raise(store: LanceDBDocumentStore, query: str) -> None:
    assert isinstance(LanceDBFTSRetriever(document_store=store).run(query=query)["documents"], list)


def test_filter_policy_replace(store: LanceDBDocumentStore) -> None:
    r = LanceDBFTSRetriever(document_store=store, filters=_c("meta.collection", "==", "b"))
    assert {d.id for d in r.run(query="language")["documents"]} == {"en-py", "en-go"}
    assert [d.id for d in r.run(query="language", filters=_c("meta.collection", "==", "a"))["documents"]] == ["en-r"]


def test_filter_policy_merge(store: LanceDBDocumentStore) -> None:
    r = LanceDBFTSRetriever(
        document_store=store, filters=_c("meta.collection", "==", "b"), filter_policy=FilterPolicy.MERGE
    )
    merged = r.run(query="language", filters=_c("content", "==", "Go is a compiled language"))["documents"]
    assert [d.id for d in merged] == ["en-go"]


async def test_run_async(store: LanceDBDocumentStore) -> None:
    r = LanceDBFTSRetriever(document_store=store)
    result = await r.run_async(query="python", filters=_c("meta.lang", "==", "en"))
    assert [d.id for d in result["documents"]] == ["en-py"]


def test_yaml_pipeline(store: LanceDBDocumentStore) -> None:
    text = yaml.safe_dump(
        {
            "components": {
                "fts": {
                    "type": TYPE,
                    "init_parameters": {
                        "document_store": {
                            "type": STORE_TYPE,
                            "init_parameters": {"path": store.path, "embedding_dim": 4},
                        },
                        "top_k": 2,
                        "filters": None,
                        "filter_policy": "replace",
                    },
                }
            },
            "connections": [],
        }
    )
    pipe = Pipeline.loads(text, allowed_modules=["components"])
    result = pipe.run({"fts": {"query": "compiled language!"}})
    assert result["fts"]["documents"][0].id == "en-go"
    assert len(result["fts"]["documents"]) == 2
