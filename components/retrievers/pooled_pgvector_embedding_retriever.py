"""pgvector-haystack's `PgvectorEmbeddingRetriever` that keeps the store type named in YAML.

Upstream `from_dict` always rebuilds a plain `PgvectorDocumentStore`; this one honours `type`, so the pooled
store (`components.stores.pooled_pgvector_document_store.PooledPgvectorDocumentStore`) survives YAML loading.
"""

from __future__ import annotations

from typing import Any

from haystack import component, default_from_dict
from haystack.document_stores.types import FilterPolicy
from haystack_integrations.components.retrievers.pgvector import PgvectorEmbeddingRetriever

from components.stores.pooled_pgvector_document_store import pgvector_store_from_dict


@component
class PooledPgvectorEmbeddingRetriever(PgvectorEmbeddingRetriever):
    """Same inputs, outputs and behaviour as `PgvectorEmbeddingRetriever`; only deserialization differs."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PooledPgvectorEmbeddingRetriever:
        """Deserialize the retriever and its store, keeping the store's own class."""
        init_params = dict(data.get("init_parameters", {}))
        init_params["document_store"] = pgvector_store_from_dict(init_params["document_store"])
        if isinstance(init_params.get("filter_policy"), str):
            init_params["filter_policy"] = FilterPolicy.from_str(init_params["filter_policy"])
        return default_from_dict(cls, {**data, "init_parameters": init_params})
