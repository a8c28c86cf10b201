"""No query result mixes two versions of one document, on the profiles whose store replaces a version in two steps.

Weaviate and Pinecone keep Haystack's `DocumentWriter`: the ingest writes a new version's chunks, then deletes the
previous version's (`app/services/ingest.py`). A query in that window finds both in the store. These tests run each
such profile's own query YAML from its retrieval to the gate, with the store and retrievers swapped for in-memory
ones holding both versions, and check what the gate passes on (the sources and the prompt's passages).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from haystack import Document, Pipeline
from haystack.document_stores.in_memory import InMemoryDocumentStore

from app.pipeline_loader import ALLOWED_MODULES, PIPELINE_FILES, pipeline_file, read_yaml
from app.services.collections import collection_filter

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "pipelines"
PROFILES = sorted(
    p for p in (DEFAULT / "profiles").glob("*/") if any((p / f"{name}.yml").is_file() for name in PIPELINE_FILES)
)
FILTER = "components.rankers.latest_version_filter.LatestVersionFilter"
REPLACER = "components.writers.document_replacer.DocumentReplacer"
UPSTREAM_OF_RETRIEVAL = {"condenser", "text_embedder"}  # the models making the query text and vector
QUERY_VECTOR = [1.0, 0.0, 0.0, 0.0]


def _writes_in_two_steps(directory: Path) -> bool:
    components = read_yaml(pipeline_file(directory, "indexing"))["components"].values()
    return not any(spec["type"] == REPLACER for spec in components)


TWO_STEP_PROFILES = [p for p in [DEFAULT, *PROFILES] if _writes_in_two_steps(p)]


def _gate(query: dict[str, Any]) -> str:
    outputs = query.get("outputs") or {}
    return str(outputs["passages"]).split(".", 1)[0]


def _retrieval_to_gate(directory: Path, store_index: str) -> Pipeline:
    """The profile's query pipeline from retrieval to the component giving the passages: every component upstream of
    it but the condenser and the text embedder; retrievers read an in-memory store (`store_index`) instead."""
    query = read_yaml(pipeline_file(directory, "query"))
    gate = _gate(query)
    connections = [(c["sender"].split(".", 1)[0], c["receiver"].split(".", 1)[0], c) for c in query["connections"]]
    kept = {gate}
    grew = True
    while grew:
        grew = False
        for sender, receiver, _ in connections:
            if receiver in kept and sender not in kept and sender not in UPSTREAM_OF_RETRIEVAL:
                kept.add(sender)
                grew = True
    components: dict[str, Any] = {}
    for name in kept:
        spec = query["components"][name]
        if "document_store" in spec.get("init_parameters", {}):  # a retriever: the same top_k, an in-memory store
            spec = {
                "type": "haystack.components.retrievers.in_memory.embedding_retriever.InMemoryEmbeddingRetriever",
                "init_parameters": {
                    "top_k": spec["init_parameters"].get("top_k", 10),
                    "document_store": {
                        "type": "haystack.document_stores.in_memory.document_store.InMemoryDocumentStore",
                        "init_parameters": {"index": store_index, "embedding_similarity_function": "cosine"},
                    },
                },
            }
        components[name] = spec
    return Pipeline.from_dict(
        {
            "components": components,
            "connections": [c for sender, receiver, c in connections if sender in kept and receiver in kept],
        },
        allowed_modules=ALLOWED_MODULES,
    )


def _chunk(cid: str, closeness: float, version: int | None, document_id: str = "doc-guide") -> Document:
    meta: dict[str, Any] = {"collection": "c1", "document_id": document_id, "file_name": "guide.txt"}
    if version is not None:
        meta.update(source_id="guide.txt", version=version)
    return Document(id=cid, content=f"passage {cid}", meta=meta, embedding=[closeness, 1.0 - closeness, 0.0, 0.0])


def _search(pipeline: Pipeline) -> list[str]:
    retrievers = [name for name, instance in pipeline.walk() if type(instance).__name__ == "InMemoryEmbeddingRetriever"]
    data: dict[str, Any] = {
        name: {"query_embedding": QUERY_VECTOR, "filters": collection_filter("c1")} for name in retrievers
    }
    gate = next(name for name, instance in pipeline.walk() if "passages" in instance.__haystack_output__._sockets_dict)
    data[gate] = {"generate": False}
    result = pipeline.run(data)
    return [d.id for d in result[gate]["passages"]]


@pytest.fixture
def store() -> InMemoryDocumentStore:
    return InMemoryDocumentStore(index=f"version-window-{uuid.uuid4().hex}", embedding_similarity_function="cosine")


def test_the_write_then_delete_profiles_are_found() -> None:
    assert {p.name for p in TWO_STEP_PROFILES} == {"weaviate", "pinecone"}


@pytest.mark.parametrize("directory", TWO_STEP_PROFILES, ids=lambda p: p.name)
def test_between_write_and_delete_a_query_sees_only_the_new_version(
    directory: Path, store: InMemoryDocumentStore
) -> None:
    # version 2 written, version 1 not deleted yet: the closest chunks alternate between the two
    store.write_documents(
        [
            _chunk("v1-a", 0.99, 1),
            _chunk("v2-a", 0.98, 2),
            _chunk("v1-b", 0.97, 1),
            _chunk("other", 0.96, 1, document_id="doc-other"),
            _chunk("v2-b", 0.95, 2),
            _chunk("v1-c", 0.94, 1),
        ]
    )

    passages = _search(_retrieval_to_gate(directory, store.index))

    assert passages == ["v2-a", "other", "v2-b"]


@pytest.mark.parametrize("directory", TWO_STEP_PROFILES, ids=lambda p: p.name)
def test_while_the_new_version_is_not_retrieved_the_old_one_stays_whole(
    directory: Path, store: InMemoryDocumentStore
) -> None:
    others = [_chunk(f"other-{i}", 0.9 - i / 100, 1, document_id="doc-other") for i in range(10)]
    store.write_documents([_chunk("v1-a", 0.99, 1), _chunk("v1-b", 0.98, 1), *others, _chunk("v2-far", 0.0, 2)])

    passages = _search(_retrieval_to_gate(directory, store.index))

    assert passages[:3] == ["v1-a", "v1-b", "other-0"] and "v2-far" not in passages


@pytest.mark.parametrize("directory", TWO_STEP_PROFILES, ids=lambda p: p.name)
def test_the_first_versioned_upload_of_a_legacy_document_hides_its_unversioned_chunks(
    directory: Path, store: InMemoryDocumentStore
) -> None:
    """`PUT /documents/{id}` of a document indexed before versions existed keeps its id: its old chunks have no
    version, the new ones have one."""
    store.write_documents([_chunk("legacy", 0.99, None), _chunk("v2-a", 0.98, 2), _chunk("v2-b", 0.97, 2)])

    assert _search(_retrieval_to_gate(directory, store.index)) == ["v2-a", "v2-b"]


@pytest.mark.parametrize("directory", TWO_STEP_PROFILES, ids=lambda p: p.name)
def test_the_filter_sits_between_retrieval_and_the_passages(directory: Path) -> None:
    """Every path from a retriever to the passages (sources, context, prompt) goes through the filter."""
    query = read_yaml(pipeline_file(directory, "query"))
    names = [name for name, spec in query["components"].items() if spec["type"] == FILTER]
    assert len(names) == 1, f"{directory.name}/query.yml has no LatestVersionFilter"
    (name,) = names
    gate = _gate(query)
    edges = [(c["sender"], c["receiver"]) for c in query["connections"]]
    retrievers = {n for n, spec in query["components"].items() if "document_store" in spec.get("init_parameters", {})}
    into_filter = {s.split(".", 1)[0] for s, r in edges if r == f"{name}.documents"}
    assert into_filter and into_filter <= retrievers | {"joiner", "document_joiner"}
    assert (f"{name}.documents", f"{gate}.documents") in edges
    # no retriever's documents reach the passages around it (a dense probe may feed the gate's score only)
    for sender, receiver in edges:
        if sender.split(".", 1)[0] in retrievers:
            assert receiver == f"{name}.documents" or receiver == f"{gate}.scored_documents", (sender, receiver)
