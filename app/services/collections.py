"""Collections as a metadata scope: one mechanism for every store (a `collection` field on every chunk).

Listing, counting and dropping use the store's own filter/count/delete methods (Haystack's extended
DocumentStore API), so the same code serves LanceDB, pgvector, Weaviate and Pinecone stores. Collections created
explicitly but still empty are remembered in a small JSON registry under the data directory.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.errors import ConflictError, NotFoundError
from app.services.ingest import validate_collection


@dataclass
class CollectionInfo:
    """A collection's name with its number of source documents and chunks."""

    name: str
    documents: int
    chunks: int


def collection_filter(name: str) -> dict[str, Any]:
    """The Haystack filter that scopes to one collection."""
    return {"field": "meta.collection", "operator": "==", "value": name}


class CollectionService:
    """List, create, count and drop collections."""

    def __init__(self, store: Any, registry_path: Path) -> None:
        self.store = store
        self.registry_path = registry_path
        self._lock = threading.Lock()

    def _registered(self) -> set[str]:
        try:
            return set(json.loads(self.registry_path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return set()

    def _save(self, names: set[str]) -> None:
        self.registry_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.registry_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(sorted(names)), encoding="utf-8")
        os.replace(tmp, self.registry_path)

    def _in_store(self) -> set[str]:
        names, _ = self.store.get_metadata_field_unique_values("meta.collection", size=100_000)
        return {str(n) for n in names}

    def info(self, name: str) -> CollectionInfo:
        """Counts for one collection (zeros for an empty one)."""
        scope = collection_filter(name)
        documents = self.store.count_unique_metadata_by_filter(scope, ["document_id"]).get("document_id", 0)
        return CollectionInfo(
            name=name, documents=int(documents), chunks=int(self.store.count_documents_by_filter(scope))
        )

    def names(self) -> list[str]:
        """The names of every collection that holds chunks or was created explicitly (no counts)."""
        return sorted(self._registered() | self._in_store())

    def list(self, *, within: frozenset[str] | None = None) -> list[CollectionInfo]:
        """Every collection that holds chunks or was created explicitly (only those `within`, if given), counted.

        A store with a grouped count (`grouped_counts(group_field, unique_fields)`: one query for every collection)
        is asked once; with any other store each collection is counted on its own (two store calls per collection).
        """
        grouped = getattr(self.store, "grouped_counts", None)
        if not callable(grouped):
            return [self.info(name) for name in self.names() if within is None or name in within]
        counts: dict[Any, dict[str, int]] = grouped("meta.collection", ["document_id"])
        names = sorted(self._registered() | {str(name) for name in counts})
        return [
            CollectionInfo(
                name=name,
                documents=int(counts.get(name, {}).get("document_id", 0)),
                chunks=int(counts.get(name, {}).get("count", 0)),
            )
            for name in names
            if within is None or name in within
        ]

    def exists(self, name: str) -> bool:
        """True when the collection was created or holds chunks."""
        return name in self._registered() or self.store.count_documents_by_filter(collection_filter(name)) > 0

    def create(self, name: str) -> CollectionInfo:
        """Create an empty collection; 409 when it exists."""
        validate_collection(name)
        with self._lock:
            if self.exists(name):
                raise ConflictError(f"collection {name!r} already exists")
            self._save(self._registered() | {name})
        return self.info(name)

    def register(self, name: str) -> None:
        """Remember a collection (ingest into a new collection creates it implicitly)."""
        with self._lock:
            names = self._registered()
            if name not in names:
                self._save(names | {name})

    def drop(self, name: str) -> int:
        """Delete every chunk of the collection and forget it; 404 when it does not exist."""
        validate_collection(name)
        with self._lock:
            if not self.exists(name):
                raise NotFoundError(f"collection {name!r} does not exist")
            deleted = int(self.store.delete_by_filter(collection_filter(name)))
            self._save(self._registered() - {name})
        return deleted
