"""weaviate-haystack's retrievers over the store whose URL comes from the environment: dense and hybrid."""

from components.retrievers.weaviate.embedding_retriever import EnvWeaviateEmbeddingRetriever
from components.retrievers.weaviate.hybrid_retriever import EnvWeaviateHybridRetriever

__all__ = ["EnvWeaviateEmbeddingRetriever", "EnvWeaviateHybridRetriever"]
