"""Collections as a metadata scope: one mechanism for every store (a `collection` field on every chunk).

Listing and counting use the store's own filter/count methods (Haystack's extended DocumentStore API),
so the same code serves LanceDB, pgvector, Weaviate and Pinecone stores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class CollectionInfo:
    """A collection's name with its number of source documents and chunks."""

    name: str
    documents: int
    chunks: int


def list_collections(store: Any) -> list[CollectionInfo]:
    """Every collection that holds chunks, with document and chunk counts."""
    if hasattr(store, "get_metadata_field_unique_values"):
        names, _ = store.get_metadata_field_unique_values("meta.collection", size=10_000)
    else:
        names = sorted({doc.meta.get("collection") for doc in store.filter_documents()} - {None})
    infos = []
    for name in sorted(str(n) for n in names):
        scope = {"field": "meta.collection", "operator": "==", "value": name}
        counts = store.count_unique_metadata_by_filter(scope, ["document_id"])
        infos.append(
            CollectionInfo(
                name=name, documents=int(counts.get("document_id", 0)), chunks=store.count_documents_by_filter(scope)
            )
        )
    return infos
