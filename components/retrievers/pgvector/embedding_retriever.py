"""pgvector-haystack's `PgvectorEmbeddingRetriever` that keeps the store type named in YAML.

Upstream `from_dict` always rebuilds a plain `PgvectorDocumentStore`; this one honours `type`, so the pooled
store (`components.stores.pgvector.document_store.PooledPgvectorDocumentStore`) survives YAML loading.
"""

from __future__ import annotations

from typing import Any

from haystack import component, default_from_dict
from haystack_integrations.components.retrievers.pgvector import PgvectorEmbeddingRetriever

from components.retrievers.serialization import with_deserialized_store
from components.stores.pgvector import pgvector_store_from_dict


@component
class PooledPgvectorEmbeddingRetriever(PgvectorEmbeddingRetriever):
    """Same inputs, outputs and behaviour as `PgvectorEmbeddingRetriever`; only deserialization differs."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PooledPgvectorEmbeddingRetriever:
        """Deserialize the retriever and its store, keeping the store's own class."""
        return default_from_dict(cls, with_deserialized_store(data, pgvector_store_from_dict))
