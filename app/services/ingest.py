"""Ingest one file at a time through the indexing pipeline, so one bad file never fails its siblings.

With a document registry (`app.services.registry`), a file is indexed once however many uploads of it run at the same
time, on any host: the upload that claims the document indexes it, a twin that finds it indexed answers `duplicate`,
and a twin that finds it being indexed waits for the outcome (answering `duplicate`, or taking over after a failure).
Only the holder of the claim removes chunks of the document.

A document is a version of a *source* (`source_id`: the file name by default). New content for a source is indexed as
its next version under the same `document_id` (the first version's) and claimed on the source's registry row: the
indexing pipeline's writer replaces the previous version's chunks in one commit (`DocumentReplacer`), and chunks whose
embedded text did not change keep their embeddings (`EmbeddingReuser`). Outcomes: `indexed` (a new source),
`updated` (a new version), `unchanged` (the source's current content), `duplicate` (another source's current
content under the same access list: under another list the bytes are a document of their own, so that `duplicate`
never confirms a document the caller may not read), `failed`. A replacement that fails leaves the previous version
current.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from haystack import logging
from haystack.core.errors import PipelineRuntimeError
from haystack.dataclasses import ByteStream
from haystack.document_stores.errors import DocumentStoreError

from app import metrics
from app.errors import (
    ConflictError,
    ExtractionError,
    ParseTimeoutError,
    PayloadTooLargeError,
    UnsupportedFileTypeError,
)
from app.memory import release_free_memory
from app.pipeline_loader import PipelineSet
from app.services.access import PUBLIC_ACL, AccessStore, access_meta, validate_principals
from app.services.file_checks import FileLimits, inspect_upload, pdf_page_count
from app.services.naming import (
    clean_filename,
    document_id_for,
    guess_content_type,
    public_source_id,
    source_copy,
    validate_collection,
    validate_source_key,
    validate_tags,
)
from app.services.registry import INDEXED, SourceTakenError, SourceVersion
from app.upstream import upstream_error
from components.converters import errors as converter_errors

if TYPE_CHECKING:
    from app.services.registry import Claim, DocumentRegistry

__all__ = ["IngestResult", "IngestService", "SourceVersion"]

logger = logging.getLogger(__name__)

TWIN_WAIT_SECONDS = 600.0  # how long an upload waits for a twin that indexes the same document
MAX_SOURCE_COPIES = 100  # copies of one source id (`source_copy`) per collection, for callers who cannot see each other
_POLL_SECONDS = (0.05, 1.0)  # first and longest pause between looks at the twin's progress
_twin_wait_hook: ContextVar[Callable[[], None] | None] = ContextVar("rag_twin_wait_hook", default=None)


@contextmanager
def on_twin_wait(hook: Callable[[], None]) -> Iterator[None]:
    """Call `hook` before each pause while an ingest of this block (this thread) waits for a twin that indexes the same
    document; it may raise to stop waiting (a job runner: the job was cancelled, or the worker stops)."""
    token = _twin_wait_hook.set(hook)
    try:
        yield
    finally:
        _twin_wait_hook.reset(token)


# Always used with `fullmatch`: `match` + `$` would accept a trailing newline ("alpha\n").
@dataclass
class IngestResult:
    """Outcome of ingesting one file."""

    document_id: str
    filename: str
    content_type: str | None
    status: Literal["indexed", "updated", "unchanged", "duplicate", "failed"]
    pages: int = 0
    chunks: int = 0
    error: str | None = None
    error_code: str | None = None
    duration_ms: float = 0.0
    source_id: str | None = None
    version: int = 0  # the source's version after this ingest (0: none, e.g. a duplicate or a refused file)
    chunks_unchanged: int = 0  # by chunk hash against the previous version: in both,
    chunks_added: int = 0  # in the new version only (embedded),
    chunks_removed: int = 0  # in the previous version only (deleted)

    @classmethod
    def refused(cls, filename: str, content_type: str | None, error: str, error_code: str) -> IngestResult:
        """A file that failed before it reached the indexing pipeline (`document_id` unknown)."""
        return cls(
            document_id="",
            filename=filename,
            content_type=content_type,
            status="failed",
            error=error,
            error_code=error_code,
        )


def _document_filter(collection: str, document_id: str, *extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "operator": "AND",
        "conditions": [
            {"field": "meta.collection", "operator": "==", "value": collection},
            {"field": "meta.document_id", "operator": "==", "value": document_id},
            *extra,
        ],
    }


def _source_filter(collection: str, source_id: str) -> dict[str, Any]:
    return {
        "operator": "AND",
        "conditions": [
            {"field": "meta.collection", "operator": "==", "value": collection},
            {"field": "meta.source_id", "operator": "==", "value": source_id},
        ],
    }


def _version_is(version: int) -> dict[str, Any]:
    return {"field": "meta.version", "operator": "==", "value": version}


@dataclass
class _Ingest:
    """One file being ingested: its result (filled in as it goes) and what indexing it needs."""

    result: IngestResult
    data: bytes
    mime: str | None
    collection: str
    content_hash: str
    tags: dict[str, Any]
    split: tuple[int, int] | None
    replace: bool
    inherit_access: bool = False  # no access list given: a new version keeps the one of the version it replaces

    @property
    def source_id(self) -> str:
        return self.result.source_id or self.result.filename


def _own_document_id(job: _Ingest) -> str:
    """The id of a source whose bytes are already another document of the collection."""
    return document_id_for(job.collection, f"{job.content_hash}\x00{job.source_id}")


def _root_cause(error: BaseException) -> BaseException:
    seen = error
    while isinstance(seen, PipelineRuntimeError) and seen.__cause__ is not None:
        seen = seen.__cause__
    return seen


class IngestService:
    """Runs the indexing pipeline of a `PipelineSet` for one file at a time."""

    def __init__(
        self,
        pipelines: PipelineSet,
        *,
        limits: FileLimits | None = None,
        registry: DocumentRegistry | None = None,
        twin_wait_seconds: float = TWIN_WAIT_SECONDS,
        access: AccessStore | None = None,
        tenant_of: Callable[[str], str] | None = None,
    ) -> None:
        """`registry`: the document registry claimed before each document is indexed (without it, a document counts
        as a duplicate when its chunks exist: concurrent twins may both index it); `twin_wait_seconds`: how long an
        upload waits while a twin indexes the same document before it reports the file failed (`document_busy`);
        `tenant_of`: the tenant of a collection ("" for none; `CollectionService.tenant_of`), the chunks' meta
        `tenant` (without it, "")."""
        self.tenant_of = tenant_of
        self.pipelines = pipelines
        self.store = pipelines.document_store
        self.limits = limits or FileLimits()
        self.registry = registry
        self.twin_wait_seconds = twin_wait_seconds
        self.access = access  # where access lists are recorded (`app.services.access`)

    def is_indexed(self, collection: str, document_id: str, *, visibility: dict[str, Any] | None = None) -> bool:
        """True when chunks of this document already exist in the collection (and the reader of `visibility`, a
        read filter, may read them)."""
        filters = _document_filter(collection, document_id, *([visibility] if visibility else []))
        if hasattr(self.store, "count_documents_by_filter"):
            return bool(self.store.count_documents_by_filter(filters))
        return bool(self.store.filter_documents(filters))

    def discard(self, collection: str, document_id: str) -> int:
        """Delete every chunk of a document and its registry row (a failed or interrupted write must not leave part of
        it; a job runs a file again from scratch; the collection was dropped while it was written).

        With a registry, the document is claimed first (also when indexed): while another upload holds a live claim
        on it, nothing is removed (0) and its chunks stay its own.
        """
        if self.registry is None:
            return self._delete_chunks(collection, document_id)
        claim = self.registry.claim(collection, document_id, take_indexed=True)
        if claim is None:
            logger.info("Document {document} is being indexed by another upload: left to it", document=document_id)
            return 0
        try:
            removed = self._delete_chunks(collection, document_id)
        except BaseException:
            self.registry.give_up(claim)  # its chunks may be left: the next claim removes them
            raise
        self.registry.release(claim)
        return removed

    def _delete_chunks(self, collection: str, document_id: str) -> int:
        filters = _document_filter(collection, document_id)
        if hasattr(self.store, "delete_by_filter"):
            return int(self.store.delete_by_filter(filters))
        ids = [doc.id for doc in self.store.filter_documents(filters)]
        if ids:
            self.store.delete_documents(ids)
        return len(ids)

    def _discard_after_failure(self, collection: str, document_id: str, name: str) -> None:
        try:
            removed = self._delete_chunks(collection, document_id)  # one delete; none found when nothing was written
        except (DocumentStoreError, OSError, RuntimeError, ValueError) as error:  # store down: the next run cleans up
            logger.warning("Could not remove partial chunks of {file}: {error}", file=name, error=str(error))
            return
        if removed:
            logger.warning("Removed {count} partial chunks of {file}", count=removed, file=name)

    def ingest_bytes(
        self,
        data: bytes,
        filename: str,
        *,
        collection: str,
        tags: dict[str, Any] | None = None,
        content_type: str | None = None,
        pdf_pages: int | None = None,
        split: tuple[int, int] | None = None,
        access: list[str] | None = None,
        source_id: str | None = None,
        replace: bool = False,
    ) -> IngestResult:
        """Index one file's bytes as the next version of its source; failures are reported in the result, never raised
        (except invalid input).

        `access`: the principals that may read the document (`app.services.access`; none: every key that may use
        the collection); its chunks carry the list's id as meta `acl`, recorded in the access store first.

        `pdf_pages`: the file's page count when the caller already read it (`count_pdf_pages`), so that a PDF is
        inspected once; without it, a PDF's pages are counted in a worker process. `split`: the splitter's chunk
        length and overlap for this file (a vector store's static chunking), through the indexing pipeline's
        `split_length` / `split_overlap` inputs (a pipeline that declares none splits as it always does).
        `source_id`: the source this file is a version of (default: the cleaned file name). `replace`: index a new
        version even when the content is the source's current one (parsed and written again; unchanged chunks still
        keep their embeddings).
        """
        collection = validate_collection(collection)
        principals = validate_principals(access)
        clean_tags = {"tenant": "", **validate_tags(tags), **access_meta(principals)}
        if principals and self.access is not None:  # before any chunk names it
            self.access.register(principals)
        name = clean_filename(filename)
        source = name if source_id is None else validate_source_key(source_id)
        started = time.perf_counter()
        content_hash = hashlib.sha256(data).hexdigest()
        document_id = document_id_for(collection, content_hash)
        mime = guess_content_type(name, content_type)
        result = IngestResult(
            document_id=document_id, filename=name, content_type=mime, status="indexed", source_id=source
        )
        try:
            mime = result.content_type = inspect_upload(data, name, mime, self.limits, pdf_pages=pdf_pages)
            job = _Ingest(
                result, data, mime, collection, content_hash, clean_tags, split, replace, inherit_access=access is None
            )
            if self.registry is not None:
                self._index_source(job)
            else:
                self._index_unregistered(job)
        except (ExtractionError, UnsupportedFileTypeError, PayloadTooLargeError) as error:
            result.status, result.error, result.error_code = "failed", error.message, error.code
        finally:
            release_free_memory()  # what parsing, embedding and writing this file freed goes back to the system
        result.duration_ms = (time.perf_counter() - started) * 1000.0
        metrics.record_ingest(collection, result.status, result.pages, result.chunks, result.duration_ms / 1000.0)
        logger.info(
            "Ingested {file}: {status}, version {version}, {pages} pages, {chunks} chunks "
            "({unchanged} unchanged, {added} added, {removed} removed) in {ms} ms",
            file=name,
            status=result.status,
            version=result.version,
            pages=result.pages,
            chunks=result.chunks,
            unchanged=result.chunks_unchanged,
            added=result.chunks_added,
            removed=result.chunks_removed,
            ms=round(result.duration_ms, 1),
        )
        return result

    def source(self, collection: str, source_id: str) -> SourceVersion | None:
        """The current version of a source of the collection (None: unknown, or its first version is not written)."""
        collection = validate_collection(collection)
        if self.registry is not None:
            found = self.registry.source(collection, source_id)
            return found if found is not None and found.content_hash is not None else None
        return self._stored_source(collection, source_id)

    def own_source(self, collection: str, source_id: str, *, visibility: dict[str, Any] | None) -> str:
        """The source an upload under `source_id` stands for, among the documents the caller reads (`visibility`;
        None: every document): the id itself, unless its document is one the caller may not read; then the first copy
        of the id (`source_copy`) that is free or that it reads. So a writer never replaces a document hidden from it,
        and the answer (`indexed`, a new document) is the one it would get if the hidden document did not exist."""
        if visibility is None:
            return source_id
        collection = validate_collection(collection)
        for number in range(1, MAX_SOURCE_COPIES + 1):
            candidate = source_copy(source_id, number)
            current = self.source(collection, candidate)
            if current is None or self.is_indexed(collection, current.document_id, visibility=visibility):
                return candidate
        raise ConflictError(f"too many documents of collection {collection!r} have source id {source_id!r}")

    def remove_source(self, collection: str, source_id: str) -> int:
        """Remove a source's chunks and its registry row; the number of chunks removed (0: unknown source, or a live
        upload holds it: left to it)."""
        collection = validate_collection(collection)
        if self.registry is None:
            return self._delete_by(_source_filter(collection, source_id))
        found = self.registry.source(collection, source_id)
        return 0 if found is None else self.discard(collection, found.document_id)

    def replace_document(
        self,
        document_id: str,
        data: bytes,
        filename: str,
        *,
        collection: str,
        tags: dict[str, Any] | None = None,
        content_type: str | None = None,
        pdf_pages: int | None = None,
    ) -> IngestResult | None:
        """Index `data` as a new version of the document's source (`PUT /documents/{id}`); None: no such document.

        A document indexed before sources existed becomes the source named by its file name (if no other document of
        the collection is that source already, else its id)."""
        collection = validate_collection(collection)
        source_id: str | None = None
        if self.registry is not None:
            row = self.registry.document(collection, document_id)
            if row is not None and row.state == INDEXED:
                source_id = row.source_id
            elif row is None and not self.is_indexed(collection, document_id):
                return None
            if source_id is None:
                source_id = self._adopt(collection, document_id)
        else:
            chunks = self.store.filter_documents(_document_filter(collection, document_id))
            if not chunks:
                return None
            source_id = str(chunks[0].meta.get("source_id") or chunks[0].meta.get("file_name") or document_id)
        return self.ingest_bytes(
            data,
            filename,
            collection=collection,
            tags=tags,
            content_type=content_type,
            pdf_pages=pdf_pages,
            source_id=source_id,
            replace=True,
        )

    def _adopt(self, collection: str, document_id: str) -> str:
        """Give a document indexed before sources existed a source id (its file name, else its id)."""
        assert self.registry is not None
        chunks = self.store.filter_documents(_document_filter(collection, document_id))
        meta = chunks[0].meta if chunks else {}
        for candidate in (meta.get("file_name"), document_id):
            if candidate and self.registry.adopt(collection, document_id, str(candidate), meta.get("content_hash")):
                return str(candidate)
        return document_id

    # -- indexing a source's version ------------------------------------------------------------------------------

    def _index_source(self, job: _Ingest) -> None:
        """Resolve the source's current version, then index the file as a new source or as its next version."""
        assert self.registry is not None
        for _ in range(5):  # a concurrent first upload of the same source took its id: look again
            try:
                current = self.registry.source(job.collection, job.source_id)
                if current is None:
                    self._index_new_source(job)
                else:
                    self._index_version(job, current)
                return
            except SourceTakenError:
                continue
        raise ExtractionError(f"{job.result.filename}: its source is being created by another upload; try again")

    def _index_new_source(self, job: _Ingest) -> None:
        assert self.registry is not None
        result = job.result
        row = self.registry.document(job.collection, result.document_id)
        if (
            row is not None
            and row.source_id != job.source_id
            and (
                (row.source_id is not None and row.content_hash != job.content_hash)
                or not self._same_access(job, result.document_id)
            )
        ):
            # these bytes were an earlier version of another source, or are a document with another access list (which
            # the caller may not read: `duplicate` would confirm it): this source gets an id of its own
            result.document_id = _own_document_id(job)
        self._index_claimed(job)

    def _index_version(self, job: _Ingest, current: SourceVersion) -> None:
        """A new version of an existing source (or `unchanged`, or `duplicate` of another source's content)."""
        assert self.registry is not None
        result = job.result
        result.document_id = current.document_id
        if current.content_hash == job.content_hash and current.state == INDEXED and not job.replace:
            result.status, result.version = "unchanged", current.version
            return
        if current.content_hash != job.content_hash:
            others = [
                row
                for row in self.registry.with_content(job.collection, job.content_hash)
                if row.source_id != job.source_id and row.state == INDEXED
            ]
            if others and job.inherit_access:  # this version's access list is the current version's
                self._inherit_access(job, current.document_id)
            others = [row for row in others if self._same_access(job, row.document_id)]
            if others:
                result.status, result.document_id, result.version = "duplicate", others[0].document_id, 0
                return
        claim = self._claim(job.collection, current.document_id, take_indexed=True)
        if claim == "busy" or claim is None:
            self._busy(result)
            return
        name = result.filename
        with self.registry.holding(claim) as holding:
            written = committed = False
            version = 0
            try:
                row = self.registry.document(job.collection, current.document_id)
                committed = row is not None and row.content_hash is not None
                if row is not None and committed and row.content_hash == job.content_hash and not job.replace:
                    self.registry.finish(claim, indexed=True)  # a twin wrote this content meanwhile
                    result.status, result.version = "unchanged", row.version
                    return
                version = (row.version + 1) if row is not None and committed else 1
                document = _document_filter(job.collection, current.document_id)
                if not claim.first:  # what a crashed or failed owner wrote of this version goes first
                    self._delete_by(_document_filter(job.collection, current.document_id, _version_is(version)))
                    if not committed:  # no version was ever completed: anything stored is partial
                        self._delete_by(document)
                written = True
                self._run(job, current.document_id, version)
                if committed and not self._atomic_writer():  # write-then-delete: the previous version goes now
                    self._delete_by(
                        _document_filter(
                            job.collection,
                            current.document_id,
                            {"field": "meta.version", "operator": "!=", "value": version},
                        )
                    )
            except BaseException:
                if holding.still_held():
                    if written:  # a partial new version; a previous complete version stays current
                        self._discard_quietly(
                            _document_filter(job.collection, current.document_id, _version_is(version))
                            if committed
                            else document,
                            name,
                        )
                    if committed:
                        self.registry.finish(claim, indexed=True)
                    else:
                        self.registry.give_up(claim)
                else:
                    logger.warning("Lost the claim on {file} while indexing a new version of it", file=name)
                raise
            if not self.registry.finish(claim, indexed=True, content_hash=job.content_hash, version=version):
                logger.warning("Lost the claim on {file} while indexing it; it was indexed all the same", file=name)
        result.status = "updated" if committed else "indexed"

    def _busy(self, result: IngestResult) -> None:
        result.status, result.error_code = "failed", "document_busy"
        result.error = (
            f"{result.filename}: another upload of the same document has been indexing it for over "
            f"{self.twin_wait_seconds:g} s; try again later"
        )

    def _run(self, job: _Ingest, document_id: str, version: int) -> None:
        """Run the indexing pipeline for this version; its counts go into the result."""
        result = job.result
        if job.inherit_access and version > 1:
            self._inherit_access(job, document_id)
        outcome = self._index(
            job.data,
            result.filename,
            job.mime,
            job.collection,
            document_id,
            job.content_hash,
            job.tags,
            job.split,
            chunk_meta={"source_id": public_source_id(job.source_id), "version": version},
        )
        result.pages, result.chunks = outcome[0], outcome[1]
        changes = outcome[2] if len(outcome) > 2 else {}
        result.chunks_unchanged = int(changes.get("unchanged", 0))
        result.chunks_added = int(changes.get("added", result.chunks))
        result.chunks_removed = int(changes.get("removed", 0))
        result.version = version

    def _inherit_access(self, job: _Ingest, document_id: str) -> None:
        """A new version uploaded without an access list keeps the current version's (never widened to public by an
        upload that did not say so; `access: []` or `PATCH` makes it public)."""
        for chunk in self.store.filter_documents(_document_filter(job.collection, document_id)):
            job.tags.update({name: chunk.meta[name] for name in ("acl", "access") if name in chunk.meta})
            return

    def _same_access(self, job: _Ingest, document_id: str) -> bool:
        """Whether a stored document has this upload's access list (True when it has no chunks). Identical bytes are a
        `duplicate` only of a document with the same access list: a caller grants only principals it holds, so it
        reads such a document, and `duplicate` never confirms one it may not read; under another access list the
        bytes are a document of their own."""
        for chunk in self.store.filter_documents(_document_filter(job.collection, document_id)):
            return str(chunk.meta.get("acl") or PUBLIC_ACL) == str(job.tags.get("acl") or PUBLIC_ACL)
        return True

    def _atomic_writer(self) -> bool:
        """Whether the indexing pipeline's writer replaces a document's chunks in one commit (`DocumentReplacer`)."""
        from components.writers.document_replacer import DocumentReplacer

        indexing = getattr(self.pipelines, "indexing", None)
        if indexing is None:
            return False
        return any(isinstance(instance, DocumentReplacer) for _, instance in indexing.pipeline.walk())

    def _delete_by(self, filters: dict[str, Any]) -> int:
        if hasattr(self.store, "delete_by_filter"):
            return int(self.store.delete_by_filter(filters))
        ids = [doc.id for doc in self.store.filter_documents(filters)]
        if ids:
            self.store.delete_documents(ids)
        return len(ids)

    def _discard_quietly(self, filters: dict[str, Any], name: str) -> None:
        try:
            removed = self._delete_by(filters)
        except (DocumentStoreError, OSError, RuntimeError, ValueError) as error:  # store down: the next run cleans up
            logger.warning("Could not remove partial chunks of {file}: {error}", file=name, error=str(error))
            return
        if removed:
            logger.warning("Removed {count} partial chunks of {file}", count=removed, file=name)

    def _stored_source(self, collection: str, source_id: str) -> SourceVersion | None:
        """Without a registry: the source's current version as its chunks record it."""
        chunks = self.store.filter_documents(_source_filter(collection, source_id))
        if not chunks:
            return None
        meta = max(chunks, key=lambda chunk: int(chunk.meta.get("version") or 1)).meta
        return SourceVersion(
            collection=collection,
            document_id=str(meta.get("document_id")),
            source_id=source_id,
            version=int(meta.get("version") or 1),
            content_hash=meta.get("content_hash"),
            previous_hash=None,
            updated_at=0.0,
            state=INDEXED,
        )

    def _index_unregistered(self, job: _Ingest) -> None:
        """Without a registry (concurrent uploads of one source may both index it): versions from the chunks."""
        result = job.result
        current = self._stored_source(job.collection, job.source_id)
        if current is not None:
            result.document_id = current.document_id
            if current.content_hash == job.content_hash and not job.replace:
                result.status, result.version = "unchanged", current.version
                return
        twin = document_id_for(job.collection, job.content_hash)
        if (current is None or current.content_hash != job.content_hash) and self.is_indexed(job.collection, twin):
            if current is not None and job.inherit_access:  # this version's access list is the current version's
                self._inherit_access(job, current.document_id)
            if self._same_access(job, twin):
                result.status, result.document_id = "duplicate", twin
                return
            if current is None:  # the same bytes under another access list: a document of its own (see _same_access)
                result.document_id = _own_document_id(job)
        version = 1 if current is None else current.version + 1
        try:
            self._run(job, result.document_id, version)
            if current is not None and not self._atomic_writer():
                self._delete_by(
                    _document_filter(
                        job.collection,
                        result.document_id,
                        {"field": "meta.version", "operator": "!=", "value": version},
                    )
                )
        except BaseException:  # failed, store down or interrupted: no half-written version stays behind
            self._discard_quietly(
                _document_filter(job.collection, result.document_id, _version_is(version)), result.filename
            )
            raise
        result.status = "indexed" if current is None else "updated"

    def _index_claimed(self, job: _Ingest) -> None:
        """Index a new source's first version under its claim (or answer `duplicate`/`unchanged`, or `document_busy`
        after waiting too long)."""
        assert self.registry is not None
        result = job.result
        collection, document_id, name = job.collection, result.document_id, result.filename
        claim = self._claim(collection, document_id, source_id=job.source_id)
        if claim is None:
            row = self.registry.document(collection, document_id)
            if row is not None and row.source_id == job.source_id:  # a twin indexed this source's content
                result.status, result.version = "unchanged", row.version
            else:
                result.status = "duplicate"
            return
        if claim == "busy":
            self._busy(result)
            return
        writing = reindex = False
        with self.registry.holding(claim) as holding:
            try:
                if claim.first and self.is_indexed(collection, document_id):  # indexed before the registry existed
                    if not job.replace:
                        self.registry.finish(claim, indexed=True)
                        result.status = "duplicate"
                        return
                    # `replace`: it becomes this source's first version, and the file its next one (indexed again,
                    # with today's chunk metadata: e.g. a Pinecone chunk gains its `acl` and `tenant`)
                    self.registry.finish(claim, indexed=True, content_hash=job.content_hash, version=1)
                    reindex = True
                else:
                    writing = True
                    if not claim.first:  # taken over from a failed or crashed owner: what it left is partial
                        self._discard_after_failure(collection, document_id, name)
                    self._run(job, document_id, 1)
            except BaseException:  # failed, store down or interrupted: the holder removes what it wrote
                if holding.still_held():
                    if writing:
                        self._discard_after_failure(collection, document_id, name)
                    self.registry.give_up(claim)
                else:  # another upload took it over: the chunks are its own now
                    logger.warning("Lost the claim on {file} while indexing it; its chunks are left", file=name)
                raise
            if not reindex and not self.registry.finish(claim, indexed=True, content_hash=job.content_hash, version=1):
                logger.warning("Lost the claim on {file} while indexing it; it was indexed all the same", file=name)
        if reindex:
            adopted = self.registry.source(collection, job.source_id)
            if adopted is None or adopted.document_id != document_id:  # another upload took the source meanwhile
                result.status = "duplicate"
                return
            self._index_version(job, adopted)

    def _claim(
        self, collection: str, document_id: str, *, take_indexed: bool = False, source_id: str | None = None
    ) -> Claim | Literal["busy"] | None:
        """The claim on the document; None when it is indexed (by a twin that was indexing it, perhaps; never with
        `take_indexed`); "busy" when a twin still indexes it after `twin_wait_seconds`."""
        assert self.registry is not None
        deadline = time.monotonic() + self.twin_wait_seconds
        pause, longest = _POLL_SECONDS
        while True:
            claim = self.registry.claim(collection, document_id, take_indexed=take_indexed, source_id=source_id)
            if claim is not None:
                return claim
            state = self.registry.state(collection, document_id)
            if state is not None and state[0] == "indexed" and not take_indexed:
                return None
            if state is None or not state[1]:  # removed, failed or expired meanwhile: claim again at once
                continue
            if time.monotonic() >= deadline:
                return "busy"
            if (hook := _twin_wait_hook.get()) is not None:
                hook()
            time.sleep(pause)
            pause = min(pause * 2, longest)

    def count_pdf_pages(self, data: bytes, filename: str) -> int:
        """A PDF's page count, read in a worker process under the parse time limit (0: it cannot be opened).

        :raises ParseTimeoutError: reading it took longer than the parse time limit.
        :raises ExtractionError: the worker died while reading it.
        """
        return pdf_page_count(data, clean_filename(filename), self.limits)

    def ingest_path(
        self,
        path: Path,
        *,
        collection: str,
        tags: dict[str, Any] | None = None,
        source_id: str | None = None,
        replace: bool = False,
    ) -> IngestResult:
        """Index a file from disk (`source_id`, `replace`: see `ingest_bytes`)."""
        try:
            data = path.read_bytes()
        except OSError as error:
            return IngestResult(
                document_id="",
                filename=clean_filename(path.name),
                content_type=None,
                status="failed",
                error=f"cannot read file: {error}",
            )
        return self.ingest_bytes(
            data, path.name, collection=collection, tags=tags, source_id=source_id, replace=replace
        )

    def _index(
        self,
        data: bytes,
        name: str,
        mime: str | None,
        collection: str,
        document_id: str,
        content_hash: str,
        tags: dict[str, Any],
        split: tuple[int, int] | None = None,
        chunk_meta: dict[str, Any] | None = None,
    ) -> tuple[int, int, dict[str, int]]:
        """Run the indexing pipeline: (pages, chunks, chunk changes against the stored version)."""
        spec = self.pipelines.indexing
        sizes: dict[str, int] = {}
        if split is not None and {"split_length", "split_overlap"} <= spec.inputs.keys():
            sizes = {"split_length": split[0], "split_overlap": split[1]}
        elif split is not None:
            logger.warning(
                "The indexing pipeline declares no split_length/split_overlap inputs: {file} is split as usual",
                file=name,
            )
        meta = {
            **tags,
            "file_name": name,
            "collection": collection,
            "document_id": document_id,
            "content_hash": content_hash,
            "tenant": self.tenant_of(collection) if self.tenant_of is not None else "",
            **({"content_type": mime} if mime else {}),
        }
        source = ByteStream(data=data, mime_type=mime, meta=meta)
        extra: dict[str, Any] = {}
        if chunk_meta and "chunk_meta" in spec.inputs:
            extra["chunk_meta"] = chunk_meta
        elif chunk_meta:
            logger.warning(
                "The indexing pipeline declares no chunk_meta input: {file} has no source/version", file=name
            )
        try:
            result = spec.pipeline.run(
                spec.run_data(sources=[source], **sizes, **extra), include_outputs_from=spec.include_outputs_from()
            )
        except PipelineRuntimeError as error:
            cause = _root_cause(error)
            upstream = None if isinstance(cause, converter_errors.ConversionError) else upstream_error(error)
            if upstream is not None:  # store or remote embedder down: the request fails (503/502/504), not the file
                raise upstream from error
            detail = {"component": getattr(error, "component_name", None)}
            if isinstance(cause, converter_errors.ParseTimeoutError):
                raise ParseTimeoutError(f"{name}: {cause}", detail=detail) from error
            if isinstance(cause, converter_errors.TextTooLargeError):
                raise PayloadTooLargeError(f"{name}: {cause}", detail=detail) from error
            raise ExtractionError(f"{name}: {cause}", detail=detail) from error
        outputs = spec.read_outputs(result)
        if outputs.get("unclassified"):
            raise UnsupportedFileTypeError(f"{name}: unsupported file type {mime or 'unknown'}")
        chunks = outputs.get("chunks") or []
        if not chunks:
            raise ExtractionError(f"{name}: no text could be extracted")
        pages = {chunk.meta.get("page") for chunk in chunks} - {None}
        changes = outputs.get("chunk_changes") or {"unchanged": 0, "added": len(chunks), "removed": 0}
        return len(pages) or 1, len(chunks), dict(changes)
