"""Finding: `GET /collections` was linear (2.5 s at 220 collections): every collection was counted with two store
queries. Both stores now count grouped by collection (`grouped_counts`), so listing is one store query whatever the
number of collections; the response is the same as counting each collection."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from haystack import Document
from haystack.utils import Secret

from app.services.collections import CollectionInfo, CollectionService
from app.testing.stores import CountingStore
from components.stores.lancedb import LanceDBDocumentStore
from components.stores.pgvector import PooledPgvectorDocumentStore

COLLECTIONS = 220


def _docs() -> list[Document]:
    return [
        Document(
            content=f"chunk {chunk} of {doc} in c{n:03d}",
            meta={"collection": f"c{n:03d}", "document_id": f"d{n}-{doc}", "file_name": f"f{doc}.txt"},
        )
        for n in range(COLLECTIONS)
        for doc in range(1 + n % 2)
        for chunk in range(2)
    ]


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("lancedb", id="lancedb"),
        pytest.param("pgvector", id="pgvector", marks=[pytest.mark.integration, pytest.mark.postgres]),
    ],
)
def store(request, tmp_path_factory) -> Iterator[Any]:
    """Both stores, holding 220 collections of one or two documents of two chunks each."""
    if request.param == "lancedb":
        yield LanceDBDocumentStore(path=str(tmp_path_factory.mktemp("listing") / "lancedb"), embedding_dim=4)
        return
    table = f"t_{uuid.uuid4().hex[:12]}"
    pg = PooledPgvectorDocumentStore(
        connection_string=Secret.from_token(request.getfixturevalue("pg_dsn")),
        table_name=table,
        embedding_dimension=4,
        hnsw_index_name=f"{table}_hnsw",
        keyword_index_name=f"{table}_tsv",
    )
    yield pg
    pg.delete_table()
    pg.close()


@pytest.fixture(scope="module")
def filled(store) -> Any:
    store.write_documents(_docs())
    return store


def _service(store: Any, tmp_path) -> CollectionService:
    service = CollectionService(store, tmp_path / "collections.db")
    service.register("empty-but-created")
    return service


def test_redteam_listing_220_collections_makes_one_store_query(filled, tmp_path):
    counting = CountingStore(filled)
    listed = _service(counting, tmp_path).list()
    assert counting.calls == {"grouped_counts": 1}, counting.calls  # was 2 per collection
    assert len(listed) == COLLECTIONS + 1
    assert listed[0] == CollectionInfo(name="c000", documents=1, chunks=2)
    assert listed[1] == CollectionInfo(name="c001", documents=2, chunks=4)
    assert CollectionInfo(name="empty-but-created", documents=0, chunks=0) in listed


def test_grouped_listing_equals_counting_each_collection(filled, tmp_path):
    within = frozenset({"c007", "c010", "empty-but-created"})
    grouped = _service(CountingStore(filled), tmp_path / "grouped").list(within=within)
    plain = _service(CountingStore(filled, hide=("grouped_counts",)), tmp_path / "plain").list(within=within)
    assert grouped == plain and [c.name for c in grouped] == ["c007", "c010", "empty-but-created"]
