"""Haystack's `AutoMergingRetriever`, keeping the ranking and accepting chunks that have no parent."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from haystack import Document, component, default_from_dict, default_to_dict
from haystack.components.retrievers.auto_merging_retriever import AutoMergingRetriever
from haystack.core.serialization import import_class_by_name

from components.retrievers.serialization import with_deserialized_store
from components.validation import check_positive_number

_REQUIRED = ("__parent_id", "__level", "__block_size")


def _store_from_dict(data: dict[str, Any]) -> Any:
    store_cls: Any = import_class_by_name(data.get("type", ""))
    return store_cls.from_dict(data)


def _mergeable(document: Document) -> bool:
    return bool(document.meta.get("__parent_id")) and all(key in document.meta for key in _REQUIRED[1:])


@component
class RankedAutoMergingRetriever:
    """
    Replaces retrieved leaves by their parent block when more than `threshold` of its children were retrieved.

    It runs Haystack's `AutoMergingRetriever` (parents fetched from `document_store` by id, merged recursively) and
    then restores the ranking it drops: a parent takes the place and the best score of its best-ranked retrieved
    child. Chunks without a parent (a page too short to split, a CSV row) pass through where they were, where
    `AutoMergingRetriever` alone raises.

    ```python
    merger = RankedAutoMergingRetriever(document_store=store, threshold=0.5)
    passages = merger.run(documents=fused_leaves)["documents"]
    ```
    """

    def __init__(self, *, document_store: Any, threshold: float = 0.5) -> None:
        """
        :param document_store: The store holding the parents (written by the indexing pipeline's `HierarchyRouter`).
        :param threshold: Share of a parent's children that must be retrieved for the parent to replace them
            (exclusive, between 0 and 1).
        :raises ValueError: on an invalid argument.
        """
        check_positive_number(threshold, "threshold")
        self.document_store = document_store
        self.threshold = threshold
        self._merger = AutoMergingRetriever(document_store=document_store, threshold=threshold)

    def to_dict(self) -> dict[str, Any]:
        """Serialize with the store."""
        return default_to_dict(self, document_store=self.document_store.to_dict(), threshold=self.threshold)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RankedAutoMergingRetriever:
        """Deserialize, building the store from its `type`."""
        return default_from_dict(cls, with_deserialized_store(data, _store_from_dict))

    @component.output_types(documents=list[Document])
    def run(self, documents: list[Document]) -> dict[str, list[Document]]:
        """
        :param documents: Retrieved chunks, best first.
        :returns: `documents`: the same ranking with merged parents in place of their children.
        """
        mergeable = [doc for doc in documents if _mergeable(doc)]
        merged = self._merger.run(documents=mergeable)["documents"] if mergeable else []
        return {"documents": _rerank(documents, merged)}

    @component.output_types(documents=list[Document])
    async def run_async(self, documents: list[Document]) -> dict[str, list[Document]]:
        """Same as `run`, fetching the parents with the store's async API."""
        mergeable = [doc for doc in documents if _mergeable(doc)]
        merged = (await self._merger.run_async(documents=mergeable))["documents"] if mergeable else []
        return {"documents": _rerank(documents, merged)}


def _rerank(documents: list[Document], merged: list[Document]) -> list[Document]:
    """`documents` with each merged parent in place of its best-ranked retrieved descendant."""
    placed: list[tuple[int, Document]] = []
    ids = {doc.id for doc in documents}
    for doc in merged:
        if doc.id in ids:  # a leaf that stayed
            continue
        # its retrieved descendants: direct children, or (merged over several levels) chunks of its text
        descendants = [
            (position, leaf)
            for position, leaf in enumerate(documents)
            if _mergeable(leaf)
            and (leaf.meta.get("__parent_id") == doc.id or (leaf.content and leaf.content in (doc.content or "")))
        ]
        scores = [leaf.score for _, leaf in descendants if leaf.score is not None]
        parent = replace(doc, score=max(scores) if scores else None)
        placed.append((min((position for position, _ in descendants), default=len(documents)), parent))
    merged_ids = {doc.id for doc in merged}
    placed.extend(
        (position, doc) for position, doc in enumerate(documents) if doc.id in merged_ids or not _mergeable(doc)
    )
    return [doc for _, doc in sorted(placed, key=lambda item: item[0])]
