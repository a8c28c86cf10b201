"""Keyword (BM25-class full-text) retrieval from a LanceDBDocumentStore."""

from __future__ import annotations

import asyncio
from typing import Any

from haystack import Document, component, default_from_dict, default_to_dict
from haystack.core.errors import DeserializationError
from haystack.core.serialization import generate_qualified_class_name
from haystack.document_stores.types import FilterPolicy
from haystack.document_stores.types.filter_policy import apply_filter_policy

from components.stores.lancedb_document_store import LanceDBDocumentStore


@component
class LanceDBFTSRetriever:
    """
    Retrieves the documents whose content best matches a keyword query, using LanceDB's native full-text index.

    The query is reduced to its word terms, so punctuation, quotes and operators typed by a user never cause an
    error. `Document.score` is the full-text (BM25) relevance score.

    Usage:
    ```python
    store = LanceDBDocumentStore(path="data/lancedb")
    retriever = LanceDBFTSRetriever(document_store=store, top_k=5)
    result = retriever.run(query="how do I reset the device?")
    ```
    """

    def __init__(
        self,
        *,
        document_store: LanceDBDocumentStore,
        filters: dict[str, Any] | None = None,
        top_k: int = 10,
        filter_policy: FilterPolicy | str = FilterPolicy.REPLACE,
    ) -> None:
        """
        Create the retriever.

        :param document_store: The LanceDBDocumentStore to search.
        :param filters: Haystack filters applied to every query.
        :param top_k: Maximum number of documents to return; must be > 0.
        :param filter_policy: How runtime filters combine with `filters`: `REPLACE` (default) or `MERGE`.
        :raises TypeError: if `document_store` is not a LanceDBDocumentStore.
        :raises ValueError: if `top_k` is not a positive integer or `filter_policy` is unknown.
        """
        if not isinstance(document_store, LanceDBDocumentStore):
            raise TypeError("document_store must be an instance of LanceDBDocumentStore")
        _check_top_k(top_k)
        self.document_store = document_store
        self.filters = filters
        self.top_k = top_k
        self.filter_policy = (
            FilterPolicy.from_str(filter_policy) if isinstance(filter_policy, str) else FilterPolicy(filter_policy)
        )

    def to_dict(self) -> dict[str, Any]:
        """Serialize the retriever, with its document store inline."""
        return default_to_dict(
            self,
            document_store=self.document_store.to_dict(),
            filters=self.filters,
            top_k=self.top_k,
            filter_policy=self.filter_policy.value,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LanceDBFTSRetriever:
        """Deserialize the retriever and its inline document store."""
        init_params = dict(data.get("init_parameters", {}))
        init_params["document_store"] = _deserialize_store(init_params.get("document_store"))
        if isinstance(init_params.get("filter_policy"), str):
            init_params["filter_policy"] = FilterPolicy.from_str(init_params["filter_policy"])
        return default_from_dict(cls, {**data, "init_parameters": init_params})

    @component.output_types(documents=list[Document])
    def run(
        self,
        query: str,
        filters: dict[str, Any] | None = None,
        top_k: int | None = None,
    ) -> dict[str, list[Document]]:
        """
        Retrieve the documents that best match `query`.

        :param query: The user's query text; an empty or punctuation-only query returns no documents.
        :param filters: Runtime filters, combined with the init filters according to `filter_policy`.
        :param top_k: Maximum number of documents to return (default: the init `top_k`).
        :returns: `{"documents": [...]}`, best first.
        """
        resolved_filters = apply_filter_policy(self.filter_policy, self.filters, filters)
        resolved_top_k = self.top_k if top_k is None else top_k
        _check_top_k(resolved_top_k)
        docs = self.document_store.bm25_retrieval(query, filters=resolved_filters, top_k=resolved_top_k)
        return {"documents": docs}

    @component.output_types(documents=list[Document])
    async def run_async(
        self,
        query: str,
        filters: dict[str, Any] | None = None,
        top_k: int | None = None,
    ) -> dict[str, list[Document]]:
        """Async `run`: the search runs in a worker thread."""
        return await asyncio.to_thread(self.run, query, filters, top_k)


def _check_top_k(top_k: int) -> None:
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k <= 0:
        raise ValueError(f"top_k must be a positive integer, got {top_k!r}")


def _deserialize_store(store_data: Any) -> LanceDBDocumentStore:
    if isinstance(store_data, LanceDBDocumentStore):
        return store_data
    if not isinstance(store_data, dict):
        raise DeserializationError("Missing 'document_store' in serialization data")
    expected = generate_qualified_class_name(LanceDBDocumentStore)
    if store_data.get("type") != expected:
        raise DeserializationError(f"document_store must be of type '{expected}', got '{store_data.get('type')}'")
    return LanceDBDocumentStore.from_dict(store_data)
