"""The collection registry: created collections are shared by every process (SQLite), a 409 for a second create,
drop forgets them, and the JSON registry of an earlier release is imported once."""

from __future__ import annotations

import json
import threading

import pytest
from haystack import Document
from haystack.document_stores.in_memory import InMemoryDocumentStore

from app.errors import ConflictError, NotFoundError
from app.services.collections import CollectionService


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
