"""Write a document's new chunks in place of its stored ones, atomically."""

from __future__ import annotations

from typing import Any

from haystack import Document, component, default_from_dict, default_to_dict, logging

logger = logging.getLogger(__name__)


@component
class DocumentReplacer:
    """
    Replaces each incoming document's stored chunks with its new ones through the store's
    `replace_documents(filters, documents) -> (written, removed)` (one commit or one transaction: a reader sees the
    old version or the new one, never a mix).

    Chunks are grouped by the meta fields `group_by` (default: collection, document_id); every stored chunk of a
    group that the new chunks do not overwrite is removed. A chunk missing one of those fields cannot be grouped:
    the writer refuses it (it would be replaced by nothing, or replace the wrong chunks).
    """

    def __init__(self, *, document_store: Any, group_by: list[str] | None = None) -> None:
        """
        :param document_store: A store with `replace_documents` (LanceDB, pgvector).
        :param group_by: Meta fields that identify one document's chunks.
        :raises ValueError: if the store cannot replace documents atomically.
        """
        if not callable(getattr(document_store, "replace_documents", None)):
            raise ValueError(
                f"{type(document_store).__name__} has no replace_documents(filters, documents): "
                "use Haystack's DocumentWriter with it"
            )
        keys = ["collection", "document_id"] if group_by is None else list(group_by)
        if not keys or not all(isinstance(name, str) and name for name in keys):
            raise ValueError("group_by must name at least one meta field")
        self.document_store = document_store
        self.group_by = keys

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(self, document_store=self.document_store.to_dict(), group_by=self.group_by)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DocumentReplacer:
        return default_from_dict(cls, data)

    @component.output_types(documents_written=int, documents_removed=int)
    def run(self, documents: list[Document]) -> dict[str, int]:
        """
        :param documents: The new chunks of one or more documents.
        :returns: `documents_written`: chunks written; `documents_removed`: stored chunks removed.
        :raises ValueError: if a chunk lacks one of the `group_by` meta fields.
        """
        groups: dict[tuple[Any, ...], list[Document]] = {}
        for doc in documents:
            key = tuple(doc.meta.get(name) for name in self.group_by)
            if any(value is None for value in key):
                raise ValueError(f"document {doc.id} has no meta {', '.join(self.group_by)}: cannot replace it")
            groups.setdefault(key, []).append(doc)
        written = removed = 0
        for key, docs in groups.items():
            filters = {
                "operator": "AND",
                "conditions": [
                    {"field": f"meta.{name}", "operator": "==", "value": value}
                    for name, value in zip(self.group_by, key, strict=True)
                ],
            }
            done, gone = self.document_store.replace_documents(filters, docs)
            written += int(done)
            removed += int(gone)
        logger.debug("Replaced {removed} chunks with {written}", removed=removed, written=written)
        return {"documents_written": written, "documents_removed": removed}
