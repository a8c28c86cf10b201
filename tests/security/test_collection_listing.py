"""Finding: `GET /collections` was linear (2.5 s at 220 collections): every collection was counted with two store
queries. With a store that counts grouped by collection, listing is one store call whatever the number of
collections; the response is the same."""

from collections import Counter
from typing import Any

import pytest
from haystack import Document

from app.services.collections import CollectionInfo, CollectionService
from components.stores.lancedb import LanceDBDocumentStore

COLLECTIONS = 200


class CountingStore:
    """Delegates to a real store and counts every method called on it."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if not callable(attr):
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return attr(*args, **kwargs)

        return counted


class GroupingStore(CountingStore):
    """A store offering `grouped_counts` (one grouped query), here computed from a single read of every chunk."""

    def grouped_counts(self, group_field: str, unique_fields: list[str]) -> dict[Any, dict[str, int]]:
        self.calls["grouped_counts"] += 1
        key = group_field.removeprefix("meta.")
        groups: dict[Any, list[dict[str, Any]]] = {}
        for doc in self._store.filter_documents():
            groups.setdefault(doc.meta.get(key), []).append(doc.meta)
        return {
            value: {"count": len(metas), **{f: len({m.get(f) for m in metas} - {None}) for f in unique_fields}}
            for value, metas in groups.items()
            if value is not None
        }


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    store = LanceDBDocumentStore(path=str(tmp_path_factory.mktemp("listing") / "lancedb"), embedding_dim=4)
    docs = [
        Document(
            content=f"chunk {chunk} of {doc} in c{n:03d}",
            meta={"collection": f"c{n:03d}", "document_id": f"d{n}-{doc}", "file_name": f"f{doc}.txt"},
        )
        for n in range(COLLECTIONS)
        for doc in range(1 + n % 2)
        for chunk in range(2)
    ]
    store.write_documents(docs)
    return store


def _service(store: Any, tmp_path) -> CollectionService:
    service = CollectionService(store, tmp_path / "collections.json")
    service.register("empty-but-created")
    return service


def test_redteam_listing_220_collections_was_linear_now_one_store_call(store, tmp_path):
    counting = GroupingStore(store)
    listed = _service(counting, tmp_path).list()
    assert len(listed) == COLLECTIONS + 1
    assert sum(counting.calls.values()) == 1, counting.calls
    assert listed[0] == CollectionInfo(name="c000", documents=1, chunks=2)
    assert listed[1] == CollectionInfo(name="c001", documents=2, chunks=4)
    assert CollectionInfo(name="empty-but-created", documents=0, chunks=0) in listed


def test_grouped_listing_equals_counting_each_collection(store, tmp_path):
    grouped = _service(GroupingStore(store), tmp_path).list(within=frozenset({"c007", "c010", "empty-but-created"}))
    plain = _service(CountingStore(store), tmp_path).list(within=frozenset({"c007", "c010", "empty-but-created"}))
    assert grouped == plain and [c.name for c in grouped] == ["c007", "c010", "empty-but-created"]
