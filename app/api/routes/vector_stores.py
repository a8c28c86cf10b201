"""OpenAI vector stores over collections: `/v1/vector_stores` (create, list, retrieve, modify, delete), their files
(attach, list, retrieve, update attributes, detach) and file batches (create, retrieve, cancel, list files).

A vector store's id is its collection's name: a key restricted to collections sees only those stores (403 outside).
Search (`POST /v1/vector_stores/{id}/search`) has a router of its own."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from app.api.auth import Admin, Reader, Writer
from app.api.deps import State
from app.api.openai_schemas import (
    ChunkingStrategyOut,
    ExpiresAfter,
    FileBatchCreate,
    FileBatchOut,
    FileCounts,
    LastError,
    VectorStoreCreate,
    VectorStoreDeleted,
    VectorStoreFileCreate,
    VectorStoreFileDeleted,
    VectorStoreFileOut,
    VectorStoreFilePage,
    VectorStoreFileUpdate,
    VectorStoreOut,
    VectorStorePage,
    VectorStoreUpdate,
    dump,
)
from app.api.schemas import AUTH_ERRORS, ErrorResponse
from app.errors import PermissionDeniedError
from app.services.api_keys import ApiKey, Role
from app.services.vector_stores import AUTO_CHUNKING, MAX_LIST, Batch, StoreFile, VectorStoreView
from app.services.vector_stores import FileCounts as Counts

router = APIRouter(prefix="/v1/vector_stores", tags=["openai"], responses=AUTH_ERRORS)
_ERRORS: dict[int | str, dict[str, Any]] = {400: {"model": ErrorResponse}, 404: {"model": ErrorResponse}}
Order = Literal["asc", "desc"]
FileStatusFilter = Literal["in_progress", "completed", "failed", "cancelled"]


def _counts(counts: Counts) -> FileCounts:
    return FileCounts(
        in_progress=counts.in_progress,
        completed=counts.completed,
        failed=counts.failed,
        cancelled=counts.cancelled,
        total=counts.total,
    )


def store_out(view: VectorStoreView) -> VectorStoreOut:
    return VectorStoreOut(
        id=view.id,
        created_at=int(view.created_at),
        name=view.name,
        usage_bytes=view.usage_bytes,
        file_counts=_counts(view.file_counts),
        status=view.status,
        expires_after=ExpiresAfter(days=view.expires_after_days) if view.expires_after_days is not None else None,
        expires_at=int(view.expires_at) if view.expires_at is not None else None,
        last_active_at=int(view.last_active_at),
        metadata=view.metadata,
    )


def file_out(file: StoreFile) -> VectorStoreFileOut:
    return VectorStoreFileOut(
        id=file.file_id,
        created_at=int(file.created_at),
        usage_bytes=file.bytes,
        vector_store_id=file.vector_store_id,
        status=file.status,
        last_error=LastError.model_validate(file.last_error) if file.last_error else None,
        attributes=file.attributes,
        chunking_strategy=ChunkingStrategyOut(**(file.chunking_strategy or AUTO_CHUNKING)),
    )


def batch_out(batch: Batch) -> FileBatchOut:
    return FileBatchOut(
        id=batch.id,
        created_at=int(batch.created_at),
        vector_store_id=batch.vector_store_id,
        status=batch.status,
        file_counts=_counts(batch.file_counts),
    )


def _file_page(found: list[StoreFile], has_more: bool) -> VectorStoreFilePage:
    data = [file_out(f) for f in found]
    return VectorStoreFilePage(
        data=data, first_id=data[0].id if data else None, last_id=data[-1].id if data else None, has_more=has_more
    )


def _checked(key: ApiKey, role: Role, store_id: str) -> str:
    key.require(role, store_id, noun="vector store")  # another tenant's store: as if it did not exist
    return store_id


@router.post(
    "",
    response_model=VectorStoreOut,
    responses=_ERRORS,
    summary="Create a vector store (a new collection `vs_...`), optionally with files",
    description="Needs a writer key on every collection: the new collection is outside any restricted scope.",
)
async def create_vector_store(body: VectorStoreCreate, state: State, key: Writer) -> VectorStoreOut:
    if key.collections is not None:  # a restricted key could not use the store it creates
        raise PermissionDeniedError("creating a vector store needs a key on every collection")
    view = await asyncio.to_thread(
        state.vector_stores.create,
        name=body.name,
        metadata=body.metadata,
        expires_after=dump(body.expires_after),
        chunking_strategy=dump(body.chunking_strategy),
        file_ids=body.file_ids,
        key=key,
    )
    return store_out(view)


@router.get("", response_model=VectorStorePage, summary="The vector stores (collections) this key may read")
async def list_vector_stores(
    state: State,
    key: Reader,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = 20,
    order: Annotated[Order, Query()] = "desc",
    after: Annotated[str | None, Query(max_length=100)] = None,
    before: Annotated[str | None, Query(max_length=100)] = None,
) -> VectorStorePage:
    views, has_more = await asyncio.to_thread(
        state.vector_stores.list,
        within=key.collections,
        visible=key.within_tenant,
        limit=limit,
        order=order,
        after=after,
        before=before,
    )
    data = [store_out(v) for v in views]
    return VectorStorePage(
        data=data, first_id=data[0].id if data else None, last_id=data[-1].id if data else None, has_more=has_more
    )


@router.get("/{vector_store_id}", response_model=VectorStoreOut, responses=_ERRORS, summary="A vector store")
async def retrieve_vector_store(vector_store_id: str, state: State, key: Reader) -> VectorStoreOut:
    store_id = _checked(key, Role.READER, vector_store_id)
    return store_out(await asyncio.to_thread(state.vector_stores.get, store_id))


@router.post(
    "/{vector_store_id}", response_model=VectorStoreOut, responses=_ERRORS, summary="Rename a vector store, etc."
)
async def modify_vector_store(
    vector_store_id: str, body: VectorStoreUpdate, state: State, key: Writer
) -> VectorStoreOut:
    store_id = _checked(key, Role.WRITER, vector_store_id)
    changes: dict[str, Any] = {"name": body.name, "metadata": body.metadata}
    if "expires_after" in body.model_fields_set:
        changes["expires_after"] = dump(body.expires_after)
    return store_out(await asyncio.to_thread(state.vector_stores.modify, store_id, **changes))


@router.delete(
    "/{vector_store_id}",
    response_model=VectorStoreDeleted,
    responses=_ERRORS,
    summary="Delete a vector store: its collection is dropped (the files stay)",
    description="Needs an admin key, as dropping a collection (`DELETE /collections/{name}`).",
)
async def delete_vector_store(vector_store_id: str, state: State, key: Admin) -> VectorStoreDeleted:
    store_id = _checked(key, Role.ADMIN, vector_store_id)
    await asyncio.to_thread(state.vector_stores.delete, store_id)
    return VectorStoreDeleted(id=store_id)


@router.post(
    "/{vector_store_id}/files",
    response_model=VectorStoreFileOut,
    responses=_ERRORS,
    summary="Attach a file: it is indexed into the store's collection with its attributes (tags)",
)
async def create_vector_store_file(
    vector_store_id: str, body: VectorStoreFileCreate, state: State, key: Writer
) -> VectorStoreFileOut:
    store_id = _checked(key, Role.WRITER, vector_store_id)
    file = await asyncio.to_thread(
        state.vector_stores.attach,
        store_id,
        body.file_id,
        attributes=body.attributes,
        chunking_strategy=dump(body.chunking_strategy),
        key=key,
    )
    return file_out(file)


@router.get(
    "/{vector_store_id}/files",
    response_model=VectorStoreFilePage,
    responses=_ERRORS,
    summary="The files of a vector store (cursor page)",
)
async def list_vector_store_files(
    vector_store_id: str,
    state: State,
    key: Reader,
    status: Annotated[FileStatusFilter | None, Query(alias="filter")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = 20,
    order: Annotated[Order, Query()] = "desc",
    after: Annotated[str | None, Query(max_length=100)] = None,
    before: Annotated[str | None, Query(max_length=100)] = None,
) -> VectorStoreFilePage:
    store_id = _checked(key, Role.READER, vector_store_id)
    found, has_more = await asyncio.to_thread(
        state.vector_stores.list_files, store_id, status=status, limit=limit, order=order, after=after, before=before
    )
    return _file_page(found, has_more)


@router.get(
    "/{vector_store_id}/files/{file_id}",
    response_model=VectorStoreFileOut,
    responses=_ERRORS,
    summary="A file of a vector store, with its ingestion status and last error",
)
async def retrieve_vector_store_file(
    vector_store_id: str, file_id: str, state: State, key: Reader
) -> VectorStoreFileOut:
    store_id = _checked(key, Role.READER, vector_store_id)
    return file_out(await asyncio.to_thread(state.vector_stores.get_file, store_id, file_id))


@router.post(
    "/{vector_store_id}/files/{file_id}",
    response_model=VectorStoreFileOut,
    responses=_ERRORS,
    summary="Replace a file's attributes (the file is indexed again with them)",
)
async def update_vector_store_file(
    vector_store_id: str, file_id: str, body: VectorStoreFileUpdate, state: State, key: Writer
) -> VectorStoreFileOut:
    store_id = _checked(key, Role.WRITER, vector_store_id)
    return file_out(await asyncio.to_thread(state.vector_stores.update_file, store_id, file_id, body.attributes))


@router.delete(
    "/{vector_store_id}/files/{file_id}",
    response_model=VectorStoreFileDeleted,
    responses=_ERRORS,
    summary="Detach a file: its chunks leave the store's collection (the file stays)",
)
async def delete_vector_store_file(
    vector_store_id: str, file_id: str, state: State, key: Writer
) -> VectorStoreFileDeleted:
    store_id = _checked(key, Role.WRITER, vector_store_id)
    await asyncio.to_thread(state.vector_stores.detach, store_id, file_id)
    return VectorStoreFileDeleted(id=file_id)


@router.post(
    "/{vector_store_id}/file_batches",
    response_model=FileBatchOut,
    responses=_ERRORS,
    summary="Attach several files as one ingestion job",
)
async def create_file_batch(vector_store_id: str, body: FileBatchCreate, state: State, key: Writer) -> FileBatchOut:
    store_id = _checked(key, Role.WRITER, vector_store_id)
    batch = await asyncio.to_thread(
        state.vector_stores.create_batch,
        store_id,
        file_ids=body.file_ids,
        files=[f.model_dump(exclude_none=True) for f in body.files] if body.files is not None else None,
        attributes=body.attributes,
        chunking_strategy=dump(body.chunking_strategy),
        key=key,
    )
    return batch_out(batch)


@router.get(
    "/{vector_store_id}/file_batches/{batch_id}",
    response_model=FileBatchOut,
    responses=_ERRORS,
    summary="A file batch: its status and file counts",
)
async def retrieve_file_batch(vector_store_id: str, batch_id: str, state: State, key: Reader) -> FileBatchOut:
    store_id = _checked(key, Role.READER, vector_store_id)
    return batch_out(await asyncio.to_thread(state.vector_stores.get_batch, store_id, batch_id))


@router.post(
    "/{vector_store_id}/file_batches/{batch_id}/cancel",
    response_model=FileBatchOut,
    responses=_ERRORS,
    summary="Cancel a file batch (its files not yet indexed)",
)
async def cancel_file_batch(vector_store_id: str, batch_id: str, state: State, key: Writer) -> FileBatchOut:
    store_id = _checked(key, Role.WRITER, vector_store_id)
    return batch_out(await asyncio.to_thread(state.vector_stores.cancel_batch, store_id, batch_id))


@router.get(
    "/{vector_store_id}/file_batches/{batch_id}/files",
    response_model=VectorStoreFilePage,
    responses=_ERRORS,
    summary="The files of a file batch (cursor page)",
)
async def list_file_batch_files(
    vector_store_id: str,
    batch_id: str,
    state: State,
    key: Reader,
    status: Annotated[FileStatusFilter | None, Query(alias="filter")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = 20,
    order: Annotated[Order, Query()] = "desc",
    after: Annotated[str | None, Query(max_length=100)] = None,
    before: Annotated[str | None, Query(max_length=100)] = None,
) -> VectorStoreFilePage:
    store_id = _checked(key, Role.READER, vector_store_id)
    await asyncio.to_thread(state.vector_stores.get_batch, store_id, batch_id)  # 404 for an unknown batch
    found, has_more = await asyncio.to_thread(
        state.vector_stores.list_files,
        store_id,
        batch_id=batch_id,
        status=status,
        limit=limit,
        order=order,
        after=after,
        before=before,
    )
    return _file_page(found, has_more)
