"""Keep one version of each document in a list of retrieved passages: the newest one present."""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any, TypeVar

from haystack import Document, component

T = TypeVar("T")


def chunk_version(meta: Mapping[str, Any]) -> float | None:
    """A chunk's `version` meta as a number (a store may give it back as an int, a float or a numeric string);
    None when it has none, i.e. it was indexed before documents had versions."""
    value = meta.get("version")
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _document_key(meta: Mapping[str, Any]) -> Hashable | None:
    """The document a chunk belongs to, across its versions: its collection and `document_id` (which a source keeps
    from its first version on), else its `source_id`; None for a chunk that names neither."""
    collection = meta.get("collection")
    if meta.get("document_id"):
        return (collection, "document", str(meta["document_id"]))
    if meta.get("source_id"):
        return (collection, "source", str(meta["source_id"]))
    return None


def _meta_of(document: Any) -> Mapping[str, Any]:
    return document.meta or {}


def latest_versions(items: Iterable[T], meta: Callable[[T], Mapping[str, Any]] = _meta_of) -> list[T]:
    """The items (retrieved chunks) without those of a document's older versions, order kept.

    For each document present (`collection` + `document_id`, else `source_id`) with chunks of several `version`s,
    only the chunks of its highest version are kept; a chunk without a version counts as older than any versioned
    chunk of its document. Chunks of a document without any version (indexed before versions existed) and chunks
    naming no document are kept. The kept items are the input objects, in their input order (scores untouched).

    :param items: the chunks, best first (Documents by default).
    :param meta: how to read an item's metadata (default: `item.meta`).
    """
    listed = list(items)
    newest: dict[Hashable, float] = {}
    for item in listed:
        data = meta(item)
        key = _document_key(data)
        version = chunk_version(data)
        if key is not None and version is not None and version > newest.get(key, -math.inf):
            newest[key] = version
    kept: list[T] = []
    for item in listed:
        data = meta(item)
        key = _document_key(data)
        if key is None or key not in newest or chunk_version(data) == newest[key]:
            kept.append(item)
    return kept


@component
class LatestVersionFilter:
    """
    Drops retrieved chunks of a document's older versions when chunks of a newer version of it are present.

    A store that cannot replace a document in one commit (Weaviate, Pinecone) gets a new version of a source written
    before the previous version's chunks are deleted: a query running in between may retrieve chunks of both. Placed
    right after retrieval (before any reranker, context selection or prompt), this component makes every result
    hold one version of each document. A result that contains chunks of the new version loses the old version's;
    one that contains only the old version's (the new chunks not retrieved, not written yet, or the old ones not
    deleted yet) keeps them: it is the previous version, whole as far as it was retrieved. So during a replacement a
    query may return fewer passages, or the previous version, never a mix.

    Chunks are grouped by their `collection` meta and `document_id` (a source keeps the document id of its first
    version, and the ingest replaces versions by it), else `source_id`; `version` is their `meta.version`. Chunks
    without a version pass untouched unless their document also has versioned chunks in the result (a document
    indexed before versions existed, being replaced by its first versioned upload). Order and scores are kept.

    ```python
    from haystack import Document
    from components.rankers.latest_version_filter import LatestVersionFilter

    docs = [
        Document(content="new", meta={"collection": "c", "document_id": "d", "version": 2}),
        Document(content="old", meta={"collection": "c", "document_id": "d", "version": 1}),
    ]
    LatestVersionFilter().run(documents=docs)["documents"]  # only the version 2 chunk
    ```
    """

    @component.output_types(documents=list[Document])
    def run(self, documents: list[Document]) -> dict[str, list[Document]]:
        """
        :param documents: The retrieved chunks, best first.
        :returns: `documents`: the chunks without those of older versions of a document present in a newer one.
        """
        return {"documents": latest_versions(documents)}
