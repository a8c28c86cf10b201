"""weaviate-haystack's store with its server URL from the environment: `document_store`."""

from components.stores.weaviate.document_store import EnvWeaviateDocumentStore

__all__ = ["EnvWeaviateDocumentStore"]
