"""`DocumentService` over a plain Haystack store."""

from __future__ import annotations

from haystack import Document
from haystack.document_stores.in_memory import InMemoryDocumentStore

from app.services.documents import DocumentService


def _chunk(version: int, index: int) -> Document:
    meta = {"collection": "c", "document_id": "d1", "source_id": "a.txt", "file_name": "a.txt", "version": version}
    return Document(id=f"v{version}-{index}", content=f"version {version} part {index}", meta={**meta, "page": index})


def test_the_listing_shows_one_version_while_a_write_then_delete_store_holds_two():
    """Between the write of a new version and the delete of the old one (Weaviate, Pinecone), the listing counts the
    newest version's chunks and pages only."""
    store = InMemoryDocumentStore()
    store.write_documents([_chunk(1, i) for i in range(3)] + [_chunk(2, i) for i in range(2)])
    [info], total = DocumentService(store).list("c")
    assert total == 1
    assert (info.document_id, info.version, info.chunks, info.pages) == ("d1", 2, 2, 2)
