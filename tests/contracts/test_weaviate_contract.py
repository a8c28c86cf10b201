"""The `weaviate` profile's store and retrievers against replayed Weaviate v4 results.

weaviate-client 4 queries and batch-writes over gRPC, which is impractical to emulate, so the replay sits at the
boundary just under weaviate-haystack: the store's `collection` and `client` are stubs returning weaviate-client's own
result classes, built from `recordings/weaviate/` (see its README). The tests check that the store and retrievers
turn them into Haystack Documents (content, meta, score) and translate Haystack filters, the collection scope first.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from haystack import Document
from weaviate.collections.classes.aggregate import AggregateGroup, AggregateGroupByReturn, AggregateReturn, GroupedBy
from weaviate.collections.classes.batch import DeleteManyReturn
from weaviate.collections.classes.filters import _FilterAnd, _FilterValue, _Operator
from weaviate.collections.classes.internal import MetadataReturn, Object, QueryReturn
from weaviate.util import generate_uuid5

from app.pipeline_loader import PipelineSpec, _StoreSharing, load_pipeline, read_yaml
from app.services.api_keys import ApiKey, Role
from app.services.collections import collection_filter
from app.services.visibility import acl_condition, and_filters, tenant_filter

ROOT = Path(__file__).resolve().parents[2]
PROFILE = ROOT / "pipelines" / "profiles" / "weaviate"
RECORDING = json.loads((Path(__file__).resolve().parent / "recordings" / "weaviate" / "query_objects.json").read_text())


def _objects(**metadata: Any) -> QueryReturn:
    """The recorded objects as weaviate-client returns them; `metadata` overrides the recorded metadata fields."""
    objects = []
    for raw in RECORDING["objects"]:
        meta = {**raw["metadata"], **metadata}
        objects.append(
            Object(
                uuid=uuid.UUID(raw["uuid"]),
                metadata=MetadataReturn(**meta),
                properties=dict(raw["properties"]),
                references=None,
                vector=dict(raw["vector"]),
                collection=RECORDING["collection"],
            )
        )
    return QueryReturn(objects=objects)


class FakeCollection:
    """The slice of `weaviate.collections.Collection` that WeaviateDocumentStore calls; records every call."""

    def __init__(self, properties: list[str]) -> None:
        self.name = RECORDING["collection"]
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.next_query: QueryReturn = _objects()
        self.next_aggregate: Any = AggregateReturn(properties={}, total_count=0)
        schema = SimpleNamespace(properties=[SimpleNamespace(name=p) for p in properties])
        self.config = SimpleNamespace(get=lambda: schema)
        self.query = SimpleNamespace(
            hybrid=self._answer("hybrid"), near_vector=self._answer("near_vector"), fetch_objects=self._answer("fetch")
        )
        self.aggregate = SimpleNamespace(over_all=self._aggregate)
        self.data = SimpleNamespace(delete_many=self._delete_many)

    def _answer(self, name: str) -> Any:
        def call(**kwargs: Any) -> QueryReturn:
            self.calls.append((name, kwargs))
            return self.next_query

        return call

    def _aggregate(self, **kwargs: Any) -> Any:
        self.calls.append(("aggregate", kwargs))
        if kwargs.get("group_by") is not None:
            return self.next_aggregate
        return AggregateReturn(properties={}, total_count=len(self.next_query.objects))

    def _delete_many(self, *, where: Any) -> DeleteManyReturn[None]:
        self.calls.append(("delete_many", {"where": where}))
        n = len(self.next_query.objects)
        return DeleteManyReturn(failed=0, matches=n, objects=None, successful=n)

    def kwargs(self, name: str) -> dict[str, Any]:
        return [kw for seen, kw in self.calls if seen == name][-1]


class FakeBatch:
    def __init__(self) -> None:
        self.added: list[dict[str, Any]] = []
        self.failed_objects: list[Any] = []

    @contextmanager
    def dynamic(self) -> Iterator[FakeBatch]:
        yield self

    def add_object(self, **kwargs: Any) -> None:
        self.added.append(kwargs)


@pytest.fixture
def profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[PipelineSpec, PipelineSpec, Any, FakeCollection]:
    """Both pipelines of the profile sharing one WeaviateDocumentStore whose collection and client are stubs."""
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path / "data"))
    sharing = _StoreSharing()
    indexing = load_pipeline(PROFILE / "indexing.yml", on_component_init=sharing)
    query = load_pipeline(PROFILE / "query.yml", on_component_init=sharing)
    (store,) = sharing.stores.values()
    settings = read_yaml(PROFILE / "indexing.yml")["components"]["writer"]["init_parameters"]["document_store"]
    declared = [p["name"] for p in settings["init_parameters"]["collection_settings"]["properties"]]
    collection = FakeCollection([*declared, "chunk_index"])  # chunk_index: added by auto-schema on first write
    store._collection = collection
    store._client = SimpleNamespace(batch=FakeBatch())
    return indexing, query, store, collection


def _scoped(collection: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    scope = collection_filter(collection)
    return scope if extra is None else {"operator": "AND", "conditions": [scope, extra]}


def test_store_config_brings_its_own_vectors_and_scopes_by_an_exact_collection_property() -> None:
    settings = read_yaml(PROFILE / "indexing.yml")["components"]["writer"]["init_parameters"]["document_store"]
    collection_settings = settings["init_parameters"]["collection_settings"]
    properties = {p["name"]: p for p in collection_settings["properties"]}

    assert collection_settings["vectorizer"] == "none"
    assert collection_settings["vectorIndexConfig"]["distance"] == "cosine"
    for name in ("collection", "document_id"):
        assert properties[name]["dataType"] == ["text"] and properties[name]["tokenization"] == "field"
    assert properties["page"]["dataType"] == ["int"]


def test_hybrid_retriever_turns_results_into_documents_and_translates_the_scope(profile: Any) -> None:
    _, query, _, collection = profile
    retriever = query.pipeline.get_component("hybrid_retriever")
    embedding = [0.1] * 384

    page_filter = {"field": "meta.page", "operator": ">=", "value": 2}

    docs = retriever.run(query="warranty", query_embedding=embedding, filters=_scoped("c1", page_filter), top_k=3)[
        "documents"
    ]

    assert [d.id for d in docs] == ["chunk-a2", "chunk-a1"]
    assert docs[0].content == "The warranty of the Acme kettle lasts 24 months."
    assert docs[0].score == pytest.approx(0.8125)
    assert docs[0].meta["collection"] == "c1" and docs[0].meta["file_name"] == "kettle.pdf"
    assert docs[0].meta["page"] == 2 and isinstance(docs[0].meta["page"], int)
    assert docs[0].embedding == [0.12, -0.03, 0.07]
    kwargs = collection.kwargs("hybrid")
    assert (kwargs["query"], kwargs["vector"], kwargs["limit"], kwargs["alpha"]) == ("warranty", embedding, 3, 0.5)
    assert kwargs["query_properties"] == ["content"]
    flt = kwargs["filters"]
    assert isinstance(flt, _FilterAnd)
    scope, page = flt.filters
    assert isinstance(scope, _FilterValue)
    assert (scope.target, scope.operator, scope.value) == ("collection", _Operator.EQUAL, "c1")
    assert (page.target, page.operator, page.value) == ("page", _Operator.GREATER_THAN_EQUAL, 2)


@pytest.mark.parametrize(("certainty", "relevant"), [(0.8, True), (0.6, False)])
def test_gate_reads_the_dense_probe_certainty(profile: Any, certainty: float, relevant: bool) -> None:
    _, query, _, collection = profile
    probe = query.pipeline.get_component("embedding_retriever")
    gate = query.pipeline.get_component("gate")
    hybrid = query.pipeline.get_component("hybrid_retriever")
    hybrid_docs = hybrid.run(query="q", query_embedding=[0.1] * 384, filters=_scoped("c1"))["documents"]
    collection.next_query = _objects(score=None, explain_score=None, certainty=certainty, distance=2 * (1 - certainty))

    scored = probe.run(query_embedding=[0.1] * 384, filters=_scoped("c1"), top_k=10)["documents"]
    result = gate.run(documents=hybrid_docs, scored_documents=scored)

    assert scored[0].score == pytest.approx(certainty)
    assert collection.kwargs("near_vector")["return_metadata"] == ["certainty"]
    assert result["relevant"] is relevant
    assert ("documents" in result) is relevant and ("replies" in result) is not relevant


def test_writer_sends_flattened_meta_our_vector_and_a_stable_uuid(profile: Any) -> None:
    indexing, _, store, _ = profile
    doc = Document(
        id="chunk-a2",
        content="The warranty lasts 24 months.",
        meta={"collection": "c1", "document_id": "docA", "file_name": "kettle.pdf", "page": 2},
        embedding=[0.5] * 384,
    )

    written = indexing.pipeline.get_component("writer").run(documents=[doc])["documents_written"]

    assert written == 1
    (added,) = store._client.batch.added
    assert added["uuid"] == generate_uuid5("chunk-a2")
    assert added["vector"] == [0.5] * 384
    assert added["collection"] == "RagChunks"
    props = added["properties"]
    assert props["_original_id"] == "chunk-a2" and props["content"] == "The warranty lasts 24 months."
    assert (props["collection"], props["document_id"], props["page"]) == ("c1", "docA", 2)
    assert "embedding" not in props and "id" not in props


def test_store_answers_what_the_services_ask(profile: Any) -> None:
    _, _, store, collection = profile
    scope = collection_filter("c1")

    assert store.count_documents_by_filter(scope) == 2
    assert collection.kwargs("aggregate")["total_count"] is True
    assert collection.kwargs("aggregate")["filters"].value == "c1"

    docs = store.filter_documents(scope)
    assert [d.meta["document_id"] for d in docs] == ["docA", "docA"]
    assert collection.kwargs("fetch")["filters"].target == "collection"

    collection.next_aggregate = AggregateGroupByReturn(
        groups=[AggregateGroup(grouped_by=GroupedBy(prop="document_id", value="docA"), properties={}, total_count=2)]
    )
    assert store.count_unique_metadata_by_filter(scope, ["document_id"]) == {"document_id": 1}
    assert collection.kwargs("aggregate")["group_by"].prop == "document_id"

    collection.next_aggregate = AggregateGroupByReturn(
        groups=[
            AggregateGroup(grouped_by=GroupedBy(prop="collection", value=name), properties={}, total_count=1)
            for name in ("c2", "c1")
        ]
    )
    assert store.get_metadata_field_unique_values("meta.collection", size=100_000) == (["c1", "c2"], 2)

    assert store.delete_by_filter(scope) == 2
    assert collection.kwargs("delete_many")["where"].value == "c1"


def test_unique_values_of_an_unknown_property_are_empty_without_a_query(profile: Any) -> None:
    _, _, store, collection = profile

    assert store.get_metadata_field_unique_values("meta.never_written", size=10) == ([], 0)
    assert [name for name, _ in collection.calls] == []


def test_count_unique_needs_the_property_in_the_schema(profile: Any) -> None:
    """Why `document_id` is declared in collection_settings: without it, listing collections raises."""
    _, _, store, _ = profile
    store._collection = FakeCollection(["_original_id", "content", "collection"])

    with pytest.raises(ValueError, match="document_id"):
        store.count_unique_metadata_by_filter(collection_filter("c1"), ["document_id"])


def _fields(condition: dict[str, Any]) -> set[str]:
    if "conditions" in condition:
        return set().union(*(_fields(c) for c in condition["conditions"]))
    return {condition["field"].removeprefix("meta.")}


def _property_lists() -> list[list[dict[str, Any]]]:
    """Every `collection_settings.properties` of the profile (each store of both pipelines)."""
    found: list[list[dict[str, Any]]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "collection_settings" in node:
                found.append(node["collection_settings"]["properties"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for name in ("indexing.yml", "query.yml"):
        walk(read_yaml(PROFILE / name))
    return found


def test_every_field_a_read_filter_or_a_version_names_is_an_exact_match_property() -> None:
    """With Weaviate's default `word` tokenization, `acl in ["acl_1a2b"]` would match every chunk whose acl has the
    token "acl" (every restricted document), and tenant "acme" the chunks of tenant "acme-corp": each text field a
    filter of the service names is declared with `field` tokenization, in every store of both pipelines."""
    key = ApiKey(id="k", name="k", role=Role.READER, collections=None, created_at="", tenant="acme")
    scoped = and_filters(tenant_filter(key), acl_condition(["acl_1a2b"]))
    assert scoped is not None
    names = _fields(scoped) | {"collection", "document_id", "source_id"}  # + the ingest's version filters
    lists = _property_lists()
    assert len(lists) >= 3  # the reuser's and the writer's store (indexing), the retrievers' (query)
    for properties in lists:
        declared = {p["name"]: p for p in properties}
        for name in sorted(names):
            assert declared.get(name, {}).get("tokenization") == "field", (name, declared.get(name))
        assert declared["version"]["dataType"] == ["int"]
