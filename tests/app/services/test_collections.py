"""The collection registry: created collections are shared by every process (SQLite), a 409 for a second create,
drop forgets them, and the JSON registry of an earlier release is imported once."""

from __future__ import annotations

import json
import threading

import pytest
from haystack import Document
from haystack.document_stores.in_memory import InMemoryDocumentStore

from app.errors import ConflictError, NotFoundError
from app.services.collections import CollectionInfo, CollectionService
from app.testing.stores import CountingStore
from components.stores.lancedb import LanceDBDocumentStore


@pytest.fixture
def store() -> InMemoryDocumentStore:
    store = InMemoryDocumentStore()
    store.write_documents(
        [
            Document(content="a", meta={"collection": "filled", "document_id": "d1"}),
            Document(content="b", meta={"collection": "filled", "document_id": "d1"}),
        ]
    )
    return store


def test_created_collections_are_seen_by_another_instance(store, tmp_path):
    first = CollectionService(store, tmp_path / "collections.db")
    assert first.create("empty").chunks == 0
    other = CollectionService(store, tmp_path / "collections.db")  # another process on the same data dir
    assert other.names() == ["empty", "filled"]
    assert [(c.name, c.documents, c.chunks) for c in other.list()] == [("empty", 0, 0), ("filled", 1, 2)]
    for name in ("empty", "filled"):
        with pytest.raises(ConflictError):
            other.create(name)


def test_concurrent_creates_of_one_name_give_one_success(store, tmp_path):
    services = [CollectionService(store, tmp_path / "collections.db") for _ in range(6)]
    outcomes: list[str] = []

    def create(service: CollectionService) -> None:
        try:
            service.create("race")
            outcomes.append("created")
        except ConflictError:
            outcomes.append("conflict")

    threads = [threading.Thread(target=create, args=(s,)) for s in services]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["conflict"] * 5 + ["created"]


def test_drop_deletes_the_chunks_and_forgets_the_name(store, tmp_path):
    service = CollectionService(store, tmp_path / "collections.db")
    service.register("filled")
    assert service.drop("filled") == 2
    assert service.names() == [] and not service.exists("filled")
    with pytest.raises(NotFoundError):
        service.drop("filled")


def test_the_json_registry_of_an_earlier_release_is_imported_once(store, tmp_path):
    legacy = tmp_path / "collections.json"
    legacy.write_text(json.dumps(["kept-a", "kept-b"]), encoding="utf-8")
    service = CollectionService(store, tmp_path / "collections.db", legacy_registry=legacy)
    assert service.names() == ["filled", "kept-a", "kept-b"]
    assert not legacy.exists() and (tmp_path / "collections.json.imported").exists()
    service.drop("kept-a")
    reopened = CollectionService(store, tmp_path / "collections.db", legacy_registry=legacy)
    assert reopened.names() == ["filled", "kept-b"]  # a dropped name does not come back from the old file


def test_drop_leaves_a_tombstone_that_refuses_writers_of_before(store, tmp_path):
    """Finding 4 of the red team: a writer that started before a drop does not bring the collection back."""
    dropped: list[str] = []
    service = CollectionService(store, tmp_path / "collections.db", on_drop=dropped.append)
    assert service.generation("filled") == 0
    before = service.generation("filled")
    assert service.drop("filled") == 2
    assert dropped == ["filled"]
    assert service.generation("filled") == 1
    assert CollectionService(store, tmp_path / "collections.db").generation("filled") == 1  # shared by processes
    assert service.register("filled", before) is False
    assert "filled" not in service.names()
    assert service.register("filled", service.generation("filled")) is True  # a writer that started after the drop
    assert "filled" in service.names()
    service.drop("filled")
    assert service.generation("filled") == 2
    service.create("filled")  # explicit re-creation works after a drop
    assert "filled" in service.names()
    assert service.register("other") is True  # no generation given: registered as before


def _collections_store(tmp_path, collections: int) -> LanceDBDocumentStore:
    store = LanceDBDocumentStore(path=str(tmp_path / "lancedb"), embedding_dim=4)
    store.write_documents(
        [
            Document(content=f"{n} {doc} {chunk}", meta={"collection": f"c{n:02d}", "document_id": f"d{n}-{doc}"})
            for n in range(collections)
            for doc in range(1 + n % 3)
            for chunk in range(1 + n % 2)
        ]
    )
    return store


def test_listing_asks_a_grouped_counts_store_once_whatever_the_number_of_collections(tmp_path):
    for collections in (3, 30):
        store = CountingStore(_collections_store(tmp_path / str(collections), collections))
        service = CollectionService(store, tmp_path / str(collections) / "collections.db")
        service.register("created-empty")
        listed = service.list()
        assert store.calls == {"grouped_counts": 1}, store.calls
        assert listed == [service.info(name) for name in [*(f"c{n:02d}" for n in range(collections)), "created-empty"]]
        assert listed[:3] == [CollectionInfo("c00", 1, 1), CollectionInfo("c01", 2, 4), CollectionInfo("c02", 3, 3)]


def test_listing_within_a_scope_and_without_grouped_counts_gives_the_same_counts(tmp_path):
    store = _collections_store(tmp_path, 12)
    within = frozenset({"c03", "c07", "nowhere"})
    grouped = CollectionService(CountingStore(store), tmp_path / "a.db").list(within=within)
    plain_store = CountingStore(store, hide=("grouped_counts",))
    plain = CollectionService(plain_store, tmp_path / "b.db").list(within=within)
    assert grouped == plain == [CollectionInfo("c03", 1, 2), CollectionInfo("c07", 2, 4)]
    assert plain_store.calls["count_documents_by_filter"] == 2  # per collection: what the grouped count avoids
