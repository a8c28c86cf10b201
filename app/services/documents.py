"""Documents (source files) within a collection: list with paging, delete with all their chunks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from app.errors import NotFoundError
from app.services.collections import collection_filter
from app.services.ingest import RESERVED_META, validate_collection

if TYPE_CHECKING:
    from app.services.registry import DocumentRegistry

# Metadata the service or the converters set; everything else on a chunk is a user tag.
_TAG_EXCLUDE = RESERVED_META | {"ocr", "row_start", "row_end", "file_path"}


@dataclass
class DocumentInfo:
    """One indexed source file."""

    document_id: str
    filename: str | None
    content_type: str | None
    collection: str
    title: str | None
    author: str | None
    created_at: str | None
    pages: int
    chunks: int
    tags: dict[str, Any] = field(default_factory=dict)
    source_id: str | None = None
    version: int | None = None
    updated_at: float | None = None


class DocumentService:
    """Reads and deletes documents through the store's filter API."""

    def __init__(self, store: Any, *, registry: DocumentRegistry | None = None) -> None:
        """`registry`: the document registry, whose rows of a deleted document go with its chunks (an upload of the
        same file indexes it again)."""
        self.store = store
        self.registry = registry

    def list(self, collection: str, *, offset: int = 0, limit: int = 50) -> tuple[list[DocumentInfo], int]:
        """Documents of a collection ordered by file name, and the total count."""
        validate_collection(collection)
        grouped: dict[str, DocumentInfo] = {}
        pages: dict[str, set[int]] = {}
        for chunk in self.store.filter_documents(collection_filter(collection)):
            meta = chunk.meta
            doc_id = str(meta.get("document_id"))
            info = grouped.get(doc_id)
            if info is None:
                info = grouped[doc_id] = DocumentInfo(
                    document_id=doc_id,
                    filename=meta.get("file_name"),
                    content_type=meta.get("content_type"),
                    collection=collection,
                    title=meta.get("title"),
                    author=meta.get("author"),
                    created_at=meta.get("created_at"),
                    pages=0,
                    chunks=0,
                    tags={k: v for k, v in meta.items() if k not in _TAG_EXCLUDE and not k.startswith("_")},
                    source_id=meta.get("source_id"),
                    version=meta.get("version"),
                )
            info.chunks += 1
            if isinstance(meta.get("page"), int):
                pages.setdefault(doc_id, set()).add(meta["page"])
        for doc_id, info in grouped.items():
            info.pages = len(pages.get(doc_id, ())) or 1
        ordered = sorted(grouped.values(), key=lambda d: ((d.filename or "").lower(), d.document_id))
        page = ordered[offset : offset + limit]
        if self.registry is not None and page:  # the registry knows each source's version and when it was indexed
            rows = self.registry.versions(collection, [info.document_id for info in page])
            for info in page:
                if (row := rows.get(info.document_id)) is not None and row.content_hash is not None:
                    info.source_id, info.version, info.updated_at = row.source_id, row.version, row.updated_at
        return page, len(ordered)

    def collection_of(self, document_id: str) -> str:
        """The collection a document belongs to; 404 when it does not exist."""
        chunks = self.store.filter_documents({"field": "meta.document_id", "operator": "==", "value": document_id})
        if not chunks:
            raise NotFoundError(f"document {document_id!r} does not exist")
        return str(chunks[0].meta.get("collection"))

    def delete(self, document_id: str) -> int:
        """Delete every chunk of a document; 404 when there is none."""
        scope = {"field": "meta.document_id", "operator": "==", "value": document_id}
        if not self.store.count_documents_by_filter(scope):
            raise NotFoundError(f"document {document_id!r} does not exist")
        deleted = int(self.store.delete_by_filter(scope))
        if self.registry is not None:  # after the chunks: a row never says indexed of a document that is gone
            self.registry.forget_document(document_id)
        return deleted
