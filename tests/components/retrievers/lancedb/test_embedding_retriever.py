"""LanceDBEmbeddingRetriever: init validation, serialization, filters and filter policy, async, YAML pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from haystack import Document, Pipeline
from haystack.core.errors import DeserializationError
from haystack.document_stores.in_memory import InMemoryDocumentStore
from haystack.document_stores.types import FilterPolicy

from components.retrievers.lancedb.embedding_retriever import LanceDBEmbeddingRetriever
from components.stores.lancedb.document_store import LanceDBDocumentStore

DIM = 4
TYPE = "components.retrievers.lancedb.embedding_retriever.LanceDBEmbeddingRetriever"
STORE_TYPE = "components.stores.lancedb.document_store.LanceDBDocumentStore"


def _c(field: str, op: str, value: Any) -> dict[str, Any]:
    return {"field": field, "operator": op, "value": value}


@pytest.fixture
def store(tmp_path: Path) -> LanceDBDocumentStore:
    s = LanceDBDocumentStore(path=str(tmp_path / "db"), embedding_dim=DIM)
    s.write_documents(
        [
            Document(id="a1", content="a1", meta={"collection": "a", "lang": "en"}, embedding=[1.0, 0.0, 0.0, 0.0]),
            Document(id="a2", content="a2", meta={"collection": "a", "lang": "de"}, embedding=[0.9, 0.1, 0.0, 0.0]),
            Document(id="b1", content="b1", meta={"collection": "b", "lang": "en"}, embedding=[0.8, 0.2, 0.0, 0.0]),
            Document(id="b2", content="b2", meta={"collection": "b", "lang": "de"}, embedding=[0.0, 1.0, 0.0, 0.0]),
            Document(id="none", content="no embedding", meta={"collection": "a"}),
        ]
    )
    return s


QUERY = [1.0, 0.0, 0.0, 0.0]


def test_init_defaults(store: LanceDBDocumentStore) -> None:
    r = LanceDBEmbeddingRetriever(document_store=store)
    assert r.top_k == 10
    assert r.filters is None
    assert r.filter_policy == FilterPolicy.REPLACE


def test_init_accepts_filter_policy_string(store: LanceDBDocumentStore) -> None:
    assert LanceDBEmbeddingRetriever(document_store=store, filter_policy="merge").filter_policy == FilterPolicy.MERGE


@pytest.mark.parametrize("top_k", [0, -1, True, 2.5])
def test_init_rejects_bad_top_k(store: LanceDBDocumentStore, top_k: Any) -> None:
    with pytest.raises(ValueError):
        LanceDBEmbeddingRetriever(document_store=store, top_k=top_k)


def test_init_rejects_other_store() -> None:
    with pytest.raises(TypeError):
        LanceDBEmbeddingRetriever(document_store=InMemoryDocumentStore())  # type: ignore[arg-type]


def test_init_rejects_bad_filter_policy(store: LanceDBDocumentStore) -> None:
    with pytest.raises(ValueError):
        LanceDBEmbeddingRetriever(document_store=store, filter_policy="sometimes")


def test_to_dict_from_dict_round_trip(store: LanceDBDocumentStore) -> None:
    r = LanceDBEmbeddingRetriever(
        document_store=store, filters=_c("meta.collection", "==", "a"), top_k=3, filter_policy=FilterPolicy.MERGE
    )
    data = r.to_dict()
    assert data == {
        "type": TYPE,
        "init_parameters": {
            "document_store": store.to_dict(),
            "filters": _c("meta.collection", "==", "a"),
            "top_k": 3,
            "filter_policy": "merge",
        },
    }
    restored = LanceDBEmbeddingRetriever.from_dict(data)
    assert isinstance(restored.document_store, LanceDBDocumentStore)
    assert restored.document_store.to_dict() == store.to_dict()
    assert restored.filter_policy == FilterPolicy.MERGE
    assert restored.to_dict() == data
    assert data["init_parameters"]["filter_policy"] == "merge"  # input not mutated


def test_from_dict_rejects_missing_or_foreign_store() -> None:
    with pytest.raises(DeserializationError):
        LanceDBEmbeddingRetriever.from_dict({"type": TYPE, "init_parameters": {}})
    foreign = {"type": "haystack.document_stores.in_memory.document_store.InMemoryDocumentStore", "init_parameters": {}}
    with pytest.raises(DeserializationError):
        LanceDBEmbeddingRetriever.from_dict({"type": TYPE, "init_parameters": {"document_store": foreign}})


def test_run(store: LanceDBDocumentStore) -> None:
    docs = LanceDBEmbeddingRetriever(document_store=store, top_k=3).run(query_embedding=QUERY)["documents"]
    assert [d.id for d in docs] == ["a1", "a2", "b1"]
    assert docs[0].score == pytest.approx(1.0)
    assert all(d.score is not None for d in docs)
    scores = [d.score or 0.0 for d in docs]
    assert scores == sorted(scores, reverse=True)


def test_run_takes_an_immutable_query_embedding(store: LanceDBDocumentStore) -> None:
    from components.embedders.query_embedding import QueryEmbedding

    retriever = LanceDBEmbeddingRetriever(document_store=store, top_k=3)

    as_list = retriever.run(query_embedding=QUERY)["documents"]
    immutable = retriever.run(query_embedding=QueryEmbedding(QUERY))["documents"]

    assert [(d.id, d.score) for d in immutable] == [(d.id, d.score) for d in as_list]


def test_run_top_k_override_and_validation(store: LanceDBDocumentStore) -> None:
    r = LanceDBEmbeddingRetriever(document_store=store, top_k=3)
    assert len(r.run(query_embedding=QUERY, top_k=1)["documents"]) == 1
    assert len(r.run(query_embedding=QUERY, top_k=100)["documents"]) == 4  # docs without embedding never returned
    with pytest.raises(ValueError):
        r.run(query_embedding=QUERY, top_k=0)


def test_filter_policy_replace(store: LanceDBDocumentStore) -> None:
    r = LanceDBEmbeddingRetriever(document_store=store, filters=_c("meta.collection", "==", "a"))
    assert {d.id for d in r.run(query_embedding=QUERY)["documents"]} == {"a1", "a2"}
    runtime = r.run(query_embedding=QUERY, filters=_c("meta.collection", "==", "b"))["documents"]
    assert {d.id for d in runtime} == {"b1", "b2"}


def test_filter_policy_merge(store: LanceDBDocumentStore) -> None:
    r = LanceDBEmbeddingRetriever(
        document_store=store, filters=_c("meta.collection", "==", "b"), filter_policy=FilterPolicy.MERGE
    )
    merged = r.run(query_embedding=QUERY, filters=_c("meta.lang", "==", "en"))["documents"]
    assert [d.id for d in merged] == ["b1"]
    assert {d.id for d in r.run(query_embedding=QUERY)["documents"]} == {"b1", "b2"}


async def test_run_async(store: LanceDBDocumentStore) -> None:
    r = LanceDBEmbeddingRetriever(document_store=store, filters=_c("meta.collection", "==", "a"))
    result = await r.run_async(query_embedding=QUERY, top_k=1)
    assert [d.id for d in result["documents"]] == ["a1"]
    sync = r.run(query_embedding=QUERY, top_k=1)
    assert result["documents"][0].score == pytest.approx(sync["documents"][0].score)


def _pipeline_yaml(store_path: str) -> str:
    return yaml.safe_dump(
        {
            "components": {
                "retriever": {
                    "type": TYPE,
                    "init_parameters": {
                        "document_store": {
                            "type": STORE_TYPE,
                            "init_parameters": {"path": store_path, "embedding_dim": DIM},
                        },
                        "filters": {"field": "meta.collection", "operator": "==", "value": "b"},
                        "top_k": 1,
                        "filter_policy": "replace",
                    },
                }
            },
            "connections": [],
        }
    )


def test_yaml_pipeline(store: LanceDBDocumentStore) -> None:
    text = _pipeline_yaml(store.path)
    pipe = Pipeline.loads(text, allowed_modules=["components"])
    result = pipe.run({"retriever": {"query_embedding": QUERY}})
    assert [d.id for d in result["retriever"]["documents"]] == ["b1"]
    result = pipe.run({"retriever": {"query_embedding": [0.0, 1.0, 0.0, 0.0], "filters": None, "top_k": 2}})
    assert [d.id for d in result["retriever"]["documents"]] == ["b2", "b1"]
    # dumping and loading again gives the same pipeline
    again = Pipeline.loads(pipe.dumps(), allowed_modules=["components"])
    assert again.to_dict() == pipe.to_dict()


def test_yaml_pipeline_needs_allowed_modules(store: LanceDBDocumentStore) -> None:
    with pytest.raises(DeserializationError):
        Pipeline.loads(_pipeline_yaml(store.path))


def test_pipeline_with_embeddings_of_real_shape(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    s = LanceDBDocumentStore(path=str(tmp_path / "db384"))
    vecs = rng.standard_normal((20, 384)).astype(np.float32)
    s.write_documents([Document(id=str(i), content=f"c{i}", embedding=v.tolist()) for i, v in enumerate(vecs)])
    pipe = Pipeline()
    pipe.add_component("retriever", LanceDBEmbeddingRetriever(document_store=s, top_k=3))
    out = pipe.run({"retriever": {"query_embedding": vecs[7].tolist()}})
    assert out["retriever"]["documents"][0].id == "7"
