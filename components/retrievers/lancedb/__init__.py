"""Retrievers of the embedded LanceDB document store: dense (`embedding_retriever`) and full-text (`fts_retriever`)."""

from components.retrievers.lancedb.embedding_retriever import LanceDBEmbeddingRetriever
from components.retrievers.lancedb.fts_retriever import LanceDBFTSRetriever

__all__ = ["LanceDBEmbeddingRetriever", "LanceDBFTSRetriever"]
