"""pgvector-haystack's retrievers that keep the pooled store named in YAML: dense and keyword."""

from components.retrievers.pgvector.embedding_retriever import PooledPgvectorEmbeddingRetriever
from components.retrievers.pgvector.keyword_retriever import PooledPgvectorKeywordRetriever

__all__ = ["PooledPgvectorEmbeddingRetriever", "PooledPgvectorKeywordRetriever"]
