"""weaviate-haystack's `WeaviateEmbeddingRetriever` over `EnvWeaviateDocumentStore` (the URL from the environment).

Upstream `from_dict` always rebuilds a plain `WeaviateDocumentStore`; this one deserializes the store named in YAML.
"""

from __future__ import annotations

from typing import Any

from haystack import component, default_from_dict
from haystack_integrations.components.retrievers.weaviate import WeaviateEmbeddingRetriever

from components.retrievers.serialization import with_deserialized_store
from components.stores.weaviate import EnvWeaviateDocumentStore


@component
class EnvWeaviateEmbeddingRetriever(WeaviateEmbeddingRetriever):
    """Same inputs, outputs and behaviour as `WeaviateEmbeddingRetriever`; only deserialization differs."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EnvWeaviateEmbeddingRetriever:
        """Deserialize the retriever and its `EnvWeaviateDocumentStore`."""
        return default_from_dict(cls, with_deserialized_store(data, EnvWeaviateDocumentStore.from_dict))
