"""Documents (source files) within a collection: list with paging, delete with all their chunks, change who reads them.

Every method takes the caller's `visibility` (`app.services.visibility.read_filter`), ANDed into the store filter:
a document the caller may not read is absent from lists and counts and is 404 `not_found` for its id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from app.errors import InvalidInputError, NotFoundError
from app.services.access import access_meta, validate_principals
from app.services.collections import collection_filter
from app.services.naming import RESERVED_META, public_source_id, validate_collection
from app.services.visibility import and_filters
from components.rankers.latest_version_filter import latest_versions

if TYPE_CHECKING:
    from app.services.access import AccessStore
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
    access: list[str] = field(default_factory=list)  # who may read it (none: every key of the collection)
    source_id: str | None = None
    version: int | None = None
    updated_at: float | None = None


class DocumentService:
    """Reads and deletes documents through the store's filter API."""

    def __init__(
        self, store: Any, *, registry: DocumentRegistry | None = None, access: AccessStore | None = None
    ) -> None:
        """`registry`: the document registry, whose rows of a deleted document go with its chunks (an upload of the
        same file indexes it again); `access`: where access lists are recorded (`set_access`)."""
        self.store = store
        self.registry = registry
        self.access = access

    def list(
        self, collection: str, *, offset: int = 0, limit: int = 50, visibility: dict[str, Any] | None = None
    ) -> tuple[list[DocumentInfo], int]:
        """Documents of a collection the caller reads, ordered by file name, and their total count."""
        validate_collection(collection)
        grouped: dict[str, DocumentInfo] = {}
        pages: dict[str, set[int]] = {}
        chunks = self.store.filter_documents(and_filters(collection_filter(collection), visibility))
        for chunk in latest_versions(chunks):  # one version per document while a write-then-delete store replaces it
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
                    access=[str(p) for p in meta.get("access") or []],
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
                    info.source_id, info.version = public_source_id(row.source_id), row.version
                    info.updated_at = row.updated_at
        return page, len(ordered)

    def collection_of(self, document_id: str, *, visibility: dict[str, Any] | None = None) -> str:
        """The collection a document belongs to; 404 when it does not exist (or the caller may not read it)."""
        chunks = self.store.filter_documents(_document(document_id, visibility))
        if not chunks:
            raise NotFoundError(f"document {document_id!r} does not exist")
        return str(chunks[0].meta.get("collection"))

    def delete(self, document_id: str, *, visibility: dict[str, Any] | None = None) -> int:
        """Delete every chunk of a document; 404 when there is none (or the caller may not read it)."""
        scope = {"field": "meta.document_id", "operator": "==", "value": document_id}
        if not self.store.count_documents_by_filter(_document(document_id, visibility)):
            raise NotFoundError(f"document {document_id!r} does not exist")
        deleted = int(self.store.delete_by_filter(scope))
        if self.registry is not None:  # after the chunks: a row never says indexed of a document that is gone
            self.registry.forget_document(document_id)
        return deleted

    def set_access(
        self, document_id: str, access: Sequence[str] | None, *, visibility: dict[str, Any] | None = None
    ) -> tuple[Sequence[str], int]:
        """Give a document a new access list (none: public): the list is recorded, then every chunk's `acl` and
        `access` meta change in one store update. 404 when the caller may not read the document; 400 for a document
        of a Files API file (its file stays readable through /v1/files). Returns the validated list and the number of
        chunks changed."""
        principals = validate_principals(access)
        chunks = self.store.filter_documents(_document(document_id, visibility))
        if not chunks:
            raise NotFoundError(f"document {document_id!r} does not exist")
        if principals and any(chunk.meta.get("file_id") for chunk in chunks):
            raise InvalidInputError(
                "this document was indexed from a file of the Files API (/v1/files), which every key of its vector "
                "store reads: it cannot be given an access list; upload it through POST /documents/upload instead"
            )
        if principals and self.access is not None:  # before any chunk names it
            self.access.register(principals)
        scope = {"field": "meta.document_id", "operator": "==", "value": document_id}
        return principals, int(self.store.update_by_filter(scope, access_meta(principals)))


def _document(document_id: str, visibility: dict[str, Any] | None) -> dict[str, Any]:
    scope = {"field": "meta.document_id", "operator": "==", "value": document_id}
    return and_filters(scope, visibility) or scope
