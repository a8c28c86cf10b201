"""Keyword (BM25-class full-text) retrieval from a LanceDBDocumentStore."""

from __future__ import annotations

import asyncio
from typing import Any

from haystack import Document, component, default_from_dict, default_to_dict
from haystack.document_stores.types import FilterPolicy
from haystack.document_stores.types.filter_policy import apply_filter_policy

from components.retrievers.serialization import with_deserialized_store
from components.stores.lancedb import LanceDBDocumentStore
from components.validation import check_int


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
        check_int(top_k, "top_k", minimum=1)
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
            document_store=self.document_store,
            filters=self.filters,
            top_k=self.top_k,
            filter_policy=self.filter_policy.value,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LanceDBFTSRetriever:
        """Deserialize the retriever; its document store through `LanceDBDocumentStore.from_dict`."""
        return default_from_dict(cls, with_deserialized_store(data, LanceDBDocumentStore.from_dict))

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
        check_int(resolved_top_k, "top_k", minimum=1)
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
