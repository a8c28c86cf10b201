"""Documents: upload (multipart), replace (a new version), list (paged), change who may read them, delete.

Every read goes through the caller's read filter (`app.api.auth.read_scope`): a document the caller may not read is
absent from listings and counts and is 404 for its id."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Iterator
from typing import Annotated, Any, BinaryIO

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import JSONResponse

from app.api.auth import Reader, Writer, read_scope
from app.api.deps import RagState, State
from app.api.errors import error_body
from app.api.routes.jobs import job_out
from app.api.schemas import (
    AUTH_ERRORS,
    DeletedDocument,
    DocumentAccess,
    DocumentAccessChanged,
    DocumentOut,
    DocumentPage,
    ErrorResponse,
    FileResult,
    JobOut,
    UploadResponse,
)
from app.errors import ExtractionError, InvalidInputError, NotFoundError
from app.jobs import UploadedFile
from app.services.access import ACCESS_TAG, validate_principals
from app.services.api_keys import Role
from app.services.file_checks import looks_like_pdf
from app.services.ingest import IngestResult
from app.services.naming import (
    clean_filename,
    guess_content_type,
    validate_collection,
    validate_source_id,
    validate_tags,
)

router = APIRouter(prefix="/documents", tags=["documents"], responses=AUTH_ERRORS)
_CHUNK = 1 << 20


def _parse_metadata(metadata: str | None) -> dict[str, Any]:
    if not metadata:
        return {}
    try:
        parsed = json.loads(metadata)
    except json.JSONDecodeError as error:
        raise InvalidInputError(f"metadata is not valid JSON: {error.msg}") from error
    if not isinstance(parsed, dict):
        raise InvalidInputError("metadata must be a JSON object of tags")
    return validate_tags(parsed)


def _parse_access(access: str | None) -> list[str] | None:
    """The `access` form field: a JSON array of principals (`[]`: every key of the collection reads it; None when not
    given: a new document is public, a new version of a source keeps the access list of the version it replaces)."""
    if access is None or not access.strip():
        return None
    try:
        parsed = json.loads(access)
    except json.JSONDecodeError as error:
        raise InvalidInputError(f"access is not valid JSON: {error.msg}") from error
    if not isinstance(parsed, list):
        raise InvalidInputError('access must be a JSON array of principals, e.g. ["group:eng", "user:bob"]')
    return validate_principals(parsed)


def _read_limited(stream: BinaryIO, limit: int) -> bytes | None:
    """The rest of the file's bytes, or None when it is larger than `limit` (blocking: call it in a thread)."""
    parts: list[bytes] = []
    size = 0
    while chunk := stream.read(_CHUNK):
        size += len(chunk)
        if size > limit:
            return None
        parts.append(chunk)
    return b"".join(parts)


PageCounts = dict[int, int | ExtractionError]  # by position in the upload: a PDF's pages, or why they are unknown


def _is_large_in_bytes(state: RagState, files: list[UploadFile]) -> bool:
    """Beyond RAG_ASYNC_THRESHOLD_MB in total: a background job, whatever the page counts."""
    return sum(upload_file.size or 0 for upload_file in files) > state.settings.async_threshold_mb * 1024 * 1024


async def _count_pages(state: RagState, files: list[UploadFile], limit: int) -> PageCounts:
    """The page count of each PDF of the upload, read once, in a worker process of the converters' pool under the
    parse time limit (never in this process); one file in memory at a time, each rewound. The counts travel with
    the files (to `ingest_bytes` or the job's spool), so that no PDF is read twice."""
    counts: PageCounts = {}
    for index, upload_file in enumerate(files):
        head = await upload_file.read(1024)
        await upload_file.seek(0)
        if not looks_like_pdf(head):
            continue
        data = await asyncio.to_thread(_read_limited, upload_file.file, limit)
        await upload_file.seek(0)
        if data is None:
            continue  # too large: refused without reading it
        try:
            async with state.ingest_slots:  # parsing work, as the file's ingestion: bounded by RAG_INGEST_CONCURRENCY
                counts[index] = await asyncio.to_thread(state.ingest.count_pdf_pages, data, upload_file.filename or "")
        except ExtractionError as error:  # too slow to read (parse_timeout), or it crashed its worker
            counts[index] = error
    return counts


def _uploads(
    files: list[UploadFile], limit: int, max_upload_mb: int, pages: PageCounts, sources: list[str] | None = None
) -> Iterator[UploadedFile]:
    """The files of an async upload, each read only when the job service asks for it (one in memory at a time)."""
    for index, upload_file in enumerate(files):
        counted = pages.get(index)
        data: bytes | None = None
        error: str | None = f"file is larger than {max_upload_mb} MiB"
        code: str | None = "payload_too_large"
        if isinstance(counted, ExtractionError):  # its pages could not be read: refused before spooling
            error, code = counted.message, counted.code
        elif (data := _read_limited(upload_file.file, limit)) is not None:
            error, code = None, None
        yield UploadedFile(
            filename=clean_filename(upload_file.filename),
            content_type=upload_file.content_type,
            data=data,
            error=error,
            error_code=code,
            pdf_pages=counted if isinstance(counted, int) else None,
            source_id=sources[index] if sources else None,
        )


async def _submit_job(
    state: RagState,
    collection: str,
    tags: dict[str, Any],
    files: list[UploadFile],
    limit: int,
    pages: PageCounts,
    sources: list[str] | None = None,
) -> JSONResponse:
    """Spool the files one at a time (never all in memory), record the job, answer 202. `sources`: each file's source
    (`IngestService.own_source`)."""
    uploads = _uploads(files, limit, state.settings.max_upload_mb, pages, sources)
    job = await asyncio.to_thread(state.jobs.submit, collection, tags, uploads)
    body = job_out(job)
    return JSONResponse(body.model_dump(), status_code=202, headers={"Location": body.status_url})


@router.post(
    "/upload",
    response_model=UploadResponse,
    responses={
        202: {"model": JobOut, "description": "Indexing in a background job; poll `status_url`."},
        400: {"model": ErrorResponse},
        409: {
            "model": ErrorResponse,
            "description": "The name is another tenant's collection (or a hundred documents the key may not read "
            "have the file's source id)",
        },
        422: {"model": ErrorResponse},
    },
    summary="Upload and index files into a collection",
    description="Each file is indexed on its own: one bad file never fails the others. A file is a version of its "
    "source (its file name, or `source_id`, among the documents the key reads: a source whose document the key may "
    "not read is left alone, and the file becomes a document of its own): a new source answers `indexed`, new "
    "content for a source `updated` "
    "(the new version replaces the previous one atomically), the source's current content `unchanged`, content "
    "that is another source's current version `duplicate`. When no file could be indexed the answer is 422. "
    "With `?async=true`, or beyond RAG_ASYNC_THRESHOLD_MB / RAG_ASYNC_THRESHOLD_PAGES, the files are spooled and "
    "indexed by a background job: 202 with the job, whose `status_url` (`GET /jobs/{id}`) shows its progress.",
)
async def upload(
    state: State,
    key: Writer,
    files: Annotated[list[UploadFile], File(description="One or more files (PDF, DOCX, TXT, MD, CSV, HTML, images)")],
    collection: Annotated[str | None, Form(description="Target collection (default: RAG_DEFAULT_COLLECTION)")] = None,
    metadata: Annotated[str | None, Form(description='JSON object of tags, e.g. {"team": "qa"}')] = None,
    access: Annotated[
        str | None,
        Form(
            description='JSON array of the principals that may read the files, e.g. ["group:eng", "user:bob"] '
            "(`user:<name>` / `group:<name>`). Without it, every key that may use the collection reads a new document, "
            "and a new version of a source keeps the access list of the version it replaces."
        ),
    ] = None,
    source_id: Annotated[
        str | None,
        Form(description="The source the file is a version of (default: its file name); one file per request."),
    ] = None,
    run_async: Annotated[
        bool,
        Query(alias="async", description="Index in a background job: answers 202 with the job (see /jobs)."),
    ] = False,
) -> Any:
    collection = validate_collection(collection or state.settings.default_collection)
    key.require(Role.WRITER, collection, creating=True)
    tags = _parse_metadata(metadata)
    principals = _parse_access(access)
    if not files:
        raise InvalidInputError("no files in the request")
    if len(files) > state.settings.max_files_per_upload:
        raise InvalidInputError(f"at most {state.settings.max_files_per_upload} files per request")
    if not key.is_operator:  # the collection is its tenant's, or becomes it (409 when another tenant holds the name)
        await asyncio.to_thread(state.collections.claim, collection, key.tenant)
    if source_id is not None:
        source_id = validate_source_id(source_id)
        if len(files) != 1:
            raise InvalidInputError("source_id names the source of one file: send one file per request")
    names = [source_id] if source_id is not None else [clean_filename(file.filename) for file in files]
    visibility = await read_scope(state, key)
    owned = {
        name: await asyncio.to_thread(state.ingest.own_source, collection, name, visibility=visibility)
        for name in dict.fromkeys(names)
    }
    sources = [owned[name] for name in names]  # one per file
    limit = state.settings.max_upload_mb * 1024 * 1024
    started = time.perf_counter()
    job_tags = {**tags, ACCESS_TAG: principals} if principals is not None else tags  # the job's runner passes it on
    if run_async or _is_large_in_bytes(state, files):  # the job's spool counts the PDFs' pages
        return await _submit_job(state, collection, job_tags, files, limit, {}, sources)
    pages = await _count_pages(state, files, limit)
    counted = sum(count for count in pages.values() if isinstance(count, int))
    if counted > state.settings.async_threshold_pages:
        return await _submit_job(state, collection, job_tags, files, limit, pages, sources)
    results: list[IngestResult] = []
    generation = await asyncio.to_thread(state.collections.generation, collection)  # a drop from now on undoes us
    for index, upload_file in enumerate(files):
        name = clean_filename(upload_file.filename)
        pdf_pages = pages.get(index)
        if isinstance(pdf_pages, ExtractionError):  # its pages could not be read within the parse time limit
            content_type = guess_content_type(name, upload_file.content_type)
            results.append(IngestResult.refused(name, content_type, pdf_pages.message, pdf_pages.code))
            continue
        data = await asyncio.to_thread(_read_limited, upload_file.file, limit)
        if data is None:
            too_large = f"file is larger than {state.settings.max_upload_mb} MiB"
            content_type = guess_content_type(name, upload_file.content_type)
            results.append(IngestResult.refused(name, content_type, too_large, "payload_too_large"))
            continue
        async with state.ingest_slots:
            result = await asyncio.to_thread(
                state.ingest.ingest_bytes,
                data,
                name,
                collection=collection,
                tags=tags,
                content_type=upload_file.content_type,
                pdf_pages=pdf_pages,
                access=principals,
                source_id=sources[index],
            )
        dropped = await asyncio.to_thread(state.collections.generation, collection) != generation
        if result.status in ("indexed", "updated") and dropped:
            result = await asyncio.to_thread(_undo_after_drop, state, collection, result)
        results.append(result)
    if any(r.status != "failed" for r in results):
        await asyncio.to_thread(state.collections.register, collection, generation)
    return _upload_answer(collection, results, started)


def _upload_answer(collection: str, results: list[IngestResult], started: float) -> Any:
    """The upload's answer: 200 with each file's result, or the error when no file could be indexed."""
    body = UploadResponse(
        collection=collection,
        files=[FileResult(**r.__dict__) for r in results],
        duration_ms=round((time.perf_counter() - started) * 1000.0, 1),
    )
    if all(r.status == "failed" for r in results):
        # one kind of failure for every file: its own status (415, 413); mixed or unreadable files: 422
        codes = {r.error_code for r in results}
        code = codes.pop() if len(codes) == 1 else "extraction_failed"
        statuses = {"unsupported_file_type": 415, "payload_too_large": 413, "collection_dropped": 409}
        status = statuses.get(code or "", 422)
        return JSONResponse(
            error_body(code or "extraction_failed", "no file could be indexed", body.model_dump()), status_code=status
        )
    return body


def _undo_after_drop(state: RagState, collection: str, result: IngestResult) -> IngestResult:
    """The collection was dropped while the file was written: remove its chunks, report the file failed."""
    state.ingest.discard(collection, result.document_id)
    return dataclasses.replace(
        result,
        status="failed",
        chunks=0,
        error="the collection was dropped while the file was being indexed",
        error_code="collection_dropped",
    )


@router.put(
    "/{document_id}",
    response_model=UploadResponse,
    responses={400: {"model": ErrorResponse}, 404: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
    summary="Replace a document's content with a new version",
    description="Indexes the file as the next version of the document's source, under the same `document_id`: the "
    "previous version's chunks are replaced atomically (a query sees one version or the other), chunks whose text "
    "did not change keep their embeddings. A new version is made even when the content is the current one "
    "(parsed and written again). The answer is the upload's, with the `version` and the chunk counts.",
)
async def replace_document(
    document_id: str,
    state: State,
    key: Writer,
    file: Annotated[UploadFile, File(description="The document's new content")],
    metadata: Annotated[str | None, Form(description='JSON object of tags, e.g. {"team": "qa"}')] = None,
) -> Any:
    visibility = await read_scope(state, key)  # a document the key may not read is 404, as an unknown one
    collection = await asyncio.to_thread(state.documents.collection_of, document_id, visibility=visibility)
    if not key.within_tenant(collection):  # beyond its tenant: as if it did not exist
        raise NotFoundError(f"document {document_id!r} does not exist")
    key.require(Role.WRITER, collection)
    tags = _parse_metadata(metadata)
    limit = state.settings.max_upload_mb * 1024 * 1024
    started = time.perf_counter()
    name = clean_filename(file.filename)
    pages = await _count_pages(state, [file], limit)
    counted = pages.get(0)
    data = await asyncio.to_thread(_read_limited, file.file, limit)
    content_type = guess_content_type(name, file.content_type)
    if isinstance(counted, ExtractionError):
        result: IngestResult | None = IngestResult.refused(name, content_type, counted.message, counted.code)
    elif data is None:
        too_large = f"file is larger than {state.settings.max_upload_mb} MiB"
        result = IngestResult.refused(name, content_type, too_large, "payload_too_large")
    else:
        async with state.ingest_slots:
            result = await asyncio.to_thread(
                state.ingest.replace_document,
                document_id,
                data,
                name,
                collection=collection,
                tags=tags,
                content_type=file.content_type,
                pdf_pages=counted,
            )
    if result is None:
        raise NotFoundError(f"document {document_id!r} does not exist")
    return _upload_answer(collection, [result], started)


@router.get(
    "",
    response_model=DocumentPage,
    responses={404: {"model": ErrorResponse, "description": "Not a collection of the key's tenant"}},
    summary="List the documents of a collection (paged)",
)
async def list_documents(
    state: State,
    key: Reader,
    collection: Annotated[str | None, Query(description="Collection (default: RAG_DEFAULT_COLLECTION)")] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> DocumentPage:
    collection = collection or state.settings.default_collection
    key.require(Role.READER, collection)
    visibility = await read_scope(state, key)
    docs, total = await asyncio.to_thread(
        state.documents.list, collection, offset=offset, limit=limit, visibility=visibility
    )
    return DocumentPage(
        collection=collection,
        total=total,
        offset=offset,
        limit=limit,
        documents=[DocumentOut(**d.__dict__) for d in docs],
    )


@router.delete(
    "/{document_id}",
    response_model=DeletedDocument,
    responses={404: {"model": ErrorResponse}},
    summary="Delete a document and all its chunks",
)
async def delete_document(document_id: str, state: State, key: Writer) -> DeletedDocument:
    visibility = await read_scope(state, key)  # a document the key may not read is 404, as an unknown one
    if key.collections is not None or key.boundary is not None:  # only documents of the key's collections
        collection = await asyncio.to_thread(state.documents.collection_of, document_id, visibility=visibility)
        if not key.within_tenant(collection):  # beyond its tenant: as if it did not exist
            raise NotFoundError(f"document {document_id!r} does not exist")
        key.require(Role.WRITER, collection)
    deleted = await asyncio.to_thread(state.documents.delete, document_id, visibility=visibility)
    return DeletedDocument(document_id=document_id, deleted_chunks=deleted)


@router.patch(
    "/{document_id}",
    response_model=DocumentAccessChanged,
    responses={400: {"model": ErrorResponse}, 404: {"model": ErrorResponse}},
    summary="Change who may read a document",
    description="Replaces the document's access list (`[]` or null: every key that may use its collection reads it) "
    "on every chunk at once. The caller needs the writer role on the document's collection and must be able to read "
    "the document (404 otherwise, as for an unknown id).",
)
async def update_document(document_id: str, body: DocumentAccess, state: State, key: Writer) -> DocumentAccessChanged:
    visibility = await read_scope(state, key)
    collection = await asyncio.to_thread(state.documents.collection_of, document_id, visibility=visibility)
    key.require(Role.WRITER, collection)
    principals, chunks = await asyncio.to_thread(
        state.documents.set_access, document_id, body.access, visibility=visibility
    )
    return DocumentAccessChanged(document_id=document_id, access=list(principals), updated_chunks=chunks)
