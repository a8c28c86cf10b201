"""No query result mixes two versions of one document, on every profile.

Weaviate and Pinecone keep Haystack's `DocumentWriter`: the ingest writes a new version's chunks, then deletes the
previous version's (`app/services/ingest.py`); a query in that window finds both in the store. LanceDB and pgvector
replace a version in one commit, but hybrid retrieval reads the store twice, so a commit between the vector and the
full-text search gives the joiner both. These tests run the profiles' own query YAML from retrieval to the gate (with
the store swapped for an in-memory one holding both versions, or the default's LanceDB store with a replacement
committed between its two retrievals) and check what the gate passes on: the sources and the prompt's passages.
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


def _retrieval_to_gate(directory: Path, store_index: str | None) -> Pipeline:
    """The profile's query pipeline from retrieval to the component giving the passages: every component upstream of
    it but the condenser and the text embedder; retrievers read an in-memory store (`store_index`) instead, or the
    profile's own store when `store_index` is None."""
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
        if store_index and "document_store" in spec.get(
            "init_parameters", {}
        ):  # a retriever: the same top_k, an in-memory store
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


def _search(pipeline: Pipeline, vector: list[float] = QUERY_VECTOR, text: str = "kettle") -> list[str]:
    data: dict[str, Any] = {}
    for name, instance in pipeline.walk():
        sockets = instance.__haystack_input__._sockets_dict
        if "filters" in sockets:  # a retriever
            data[name] = {"filters": collection_filter("c1")}
            data[name].update({"query_embedding": vector} if "query_embedding" in sockets else {"query": text})
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


@pytest.mark.parametrize("directory", [DEFAULT, *PROFILES], ids=lambda p: p.name if p != DEFAULT else "default")
def test_every_profile_filters_versions_between_retrieval_and_the_passages(directory: Path) -> None:
    """Every path from a retriever to the passages (sources, context, prompt) goes through the one filter; a dense
    probe may feed the gate's score (`scored_documents`) only."""
    query = read_yaml(pipeline_file(directory, "query"))
    names = [name for name, spec in query["components"].items() if spec["type"] == FILTER]
    assert len(names) == 1, f"{directory.name}/query.yml has no LatestVersionFilter"
    (name,) = names
    gate = _gate(query)
    edges = [(c["sender"], c["receiver"]) for c in query["connections"]]
    fed = {receiver.split(".", 1)[0] for _, receiver in edges if receiver.endswith(".documents")}
    retrievers = {  # reading the store from the query (hierarchical's merger reads parents of the passages it gets)
        n for n, spec in query["components"].items() if "document_store" in spec.get("init_parameters", {})
    } - fed
    reached = set(retrievers)
    grew = True
    while grew:
        grew = False
        for sender, receiver in edges:
            target = receiver.split(".", 1)[0]
            if sender.split(".", 1)[0] in reached and target != name and target not in reached:
                if receiver == f"{gate}.scored_documents":
                    continue
                reached.add(target)
                grew = True
    assert gate not in reached, f"{directory.name}: retrieved chunks reach {gate} around {name}"
    assert any(sender.split(".", 1)[0] in retrievers | reached for sender, r in edges if r == f"{name}.documents")


def _lance_chunk(cid: str, version: int, vector: list[float], text: str) -> Document:
    meta = {
        "collection": "c1",
        "document_id": "doc-guide",
        "file_name": "guide.txt",
        "acl": "public",
        "tenant": "",
        "source_id": "guide.txt",
        "version": version,
    }
    return Document(id=cid, content=text, meta=meta, embedding=vector)


def test_a_replacement_committed_between_the_two_retrievals_of_a_hybrid_query_is_not_mixed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LanceDB replaces a version in one commit, but hybrid retrieval reads the table twice (vector, then full-text,
    each at the latest version): a commit in between gives the joiner chunks of both versions."""
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path))
    pipeline = _retrieval_to_gate(DEFAULT, None)
    dense = [0.0] * 384
    dense[0] = 1.0
    old = [_lance_chunk(f"v1-{i}", 1, dense, f"Version one passage {i} about tea.") for i in range(3)]
    new = [_lance_chunk(f"v2-{i}", 2, dense, f"Version two passage {i}: the kettle boils.") for i in range(3)]
    retrievers = [name for name, _ in pipeline.walk() if name.endswith("retriever")]
    store = pipeline.get_component(retrievers[0]).document_store
    store.write_documents(old)
    scope = {
        "operator": "AND",
        "conditions": [collection_filter("c1"), {"field": "meta.document_id", "operator": "==", "value": "doc-guide"}],
    }
    runs: list[str] = []
    for name in retrievers:
        instance = pipeline.get_component(name)

        def run(*args: Any, _name: str = name, _run: Any = instance.run, **kwargs: Any) -> dict[str, Any]:
            runs.append(_name)
            if len(runs) == 2:  # the new version commits between the first retrieval and the second
                store.replace_documents(scope, new)
            return _run(*args, **kwargs)

        monkeypatch.setattr(instance, "run", run)

    passages = _search(pipeline, vector=dense, text="kettle boils")

    assert len(runs) == 2
    assert passages and {p.split("-")[0] for p in passages} == {"v2"}, passages
