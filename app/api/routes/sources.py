"""Sync sources (`/sources`): register a folder, an S3 prefix or a list of URLs to keep a collection in step with,
run it now or on its interval, and read its run history with per-file outcomes.

Roles: registering, changing and deleting a source is an admin's (within the collection): a source reads server-side
locations (RAG_SYNC_ROOTS, RAG_SYNC_S3_BUCKETS) that are not the collection's own. Starting a run is a writer's (it
only re-reads what an admin configured); reading sources and runs is a reader's.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from app.api.auth import Admin, Reader, Writer
from app.api.deps import State
from app.api.schemas import AUTH_ERRORS, ErrorResponse
from app.api.source_schemas import (
    RunCounts,
    RunEntryOut,
    SourceCreate,
    SourceOut,
    SourcePage,
    SourceUpdate,
    SyncRunOut,
    SyncRunPage,
)
from app.errors import NotFoundError
from app.services.api_keys import ApiKey, Role
from app.sync.models import Source, SyncRun
from app.sync.runner import ingest_adapter
from app.sync.service import readable_by

router = APIRouter(prefix="/sources", tags=["sources"], responses=AUTH_ERRORS)
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorResponse}}
_INVALID: dict[int | str, dict[str, Any]] = {400: {"model": ErrorResponse}, 404: {"model": ErrorResponse}}
_CONFLICT: dict[int | str, dict[str, Any]] = {404: {"model": ErrorResponse}, 409: {"model": ErrorResponse}}
SourceId = Annotated[str, Path(pattern=r"^src_[0-9a-f]{24}$", description="`src_<24 hex>`")]


def source_out(source: Source) -> SourceOut:
    return SourceOut(
        id=source.id,
        collection=source.collection,
        kind=source.kind,
        location=source.location,
        include=source.include,
        exclude=source.exclude,
        interval_seconds=source.interval_seconds,
        access=source.access,
        enabled=source.enabled,
        created_at=source.created_at,
        updated_at=source.updated_at,
        last_run_at=source.last_run_at,
        next_run_at=source.next_run_at,
        active_run=source.active_run,
    )


def run_out(run: SyncRun, entries: list[RunEntryOut] | None = None) -> SyncRunOut:
    return SyncRunOut(
        run_id=run.id,
        job_url=f"/jobs/{run.id}",
        source_id=run.source_id,
        collection=run.collection,
        trigger=run.trigger,
        state=run.state,
        error=run.error,
        counts=RunCounts(**run.counts),
        created_at=run.created_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
        entries=entries,
    )


def _principals(key: ApiKey) -> frozenset[str] | None:
    """Whose documents the key reads (None: every one)."""
    return None if "*" in key.principals else key.principals


async def _source_for(state: State, key: ApiKey, role: Role, source_id: str) -> Source:
    """The source, if the key may act on its collection with `role` (403 otherwise) and read its documents (404
    otherwise, as when unknown: a source whose documents the key may not read does not exist for it)."""
    source = await asyncio.to_thread(state.sources.get, source_id)
    if not key.within_tenant(source.collection) or not readable_by(source, _principals(key)):
        raise NotFoundError(f"source {source_id!r} does not exist")  # beyond its tenant or access: as if unknown
    key.require(role, source.collection)
    return source


@router.post(
    "",
    response_model=SourceOut,
    status_code=201,
    responses={400: {"model": ErrorResponse}},
    summary="Register a sync source (admin of the collection)",
    description="400 when the location is refused: a folder outside RAG_SYNC_ROOTS, a bucket not in "
    "RAG_SYNC_S3_BUCKETS, a URL that is not http(s) or not public (RAG_SYNC_ALLOW_PRIVATE_URLS). A source with an "
    "interval runs at once, then every interval; start a run of a manual one with `POST /sources/{id}/runs`.",
)
async def create_source(body: SourceCreate, state: State, key: Admin) -> SourceOut:
    key.require(Role.ADMIN, body.collection)
    source = await asyncio.to_thread(
        state.sources.create,
        collection=body.collection,
        kind=body.kind,
        location=body.location,
        include=body.include,
        exclude=body.exclude,
        interval_seconds=body.interval_seconds,
        access=body.access,
        enabled=body.enabled,
    )
    return source_out(source)


@router.get("", response_model=SourcePage, summary="Sync sources (paged); only the key's collections")
async def list_sources(
    state: State,
    key: Reader,
    collection: Annotated[str | None, Query(description="Only the sources of this collection")] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> SourcePage:
    if collection is not None:
        key.require(Role.READER, collection)
    within, excluding = key.listing_scope()  # its collection scope within its tenant boundary
    sources, total = await asyncio.to_thread(
        state.sources.sources,
        collection=collection,
        within=within,
        excluding=excluding,
        principals=_principals(key),
        offset=offset,
        limit=limit,
    )
    return SourcePage(total=total, offset=offset, limit=limit, sources=[source_out(s) for s in sources])


@router.get("/{source_id}", response_model=SourceOut, responses=_NOT_FOUND, summary="A sync source")
async def get_source(source_id: SourceId, state: State, key: Reader) -> SourceOut:
    return source_out(await _source_for(state, key, Role.READER, source_id))


@router.patch(
    "/{source_id}",
    response_model=SourceOut,
    responses=_INVALID,
    summary="Change a sync source (admin of the collection)",
    description="Only the fields sent change; `interval_seconds: null` makes it manual. A new location or new globs "
    "apply from the next run: entries no longer selected are then removed.",
)
async def update_source(source_id: SourceId, body: SourceUpdate, state: State, key: Admin) -> SourceOut:
    await _source_for(state, key, Role.ADMIN, source_id)
    values = body.model_dump(exclude_unset=True)
    for name in ("location", "include", "exclude", "enabled"):
        if name in values and values[name] is None:
            del values[name]  # null for a field that cannot be null: unchanged
    return source_out(await asyncio.to_thread(state.sources.update, source_id, **values))


@router.delete(
    "/{source_id}",
    status_code=204,
    responses=_NOT_FOUND,
    summary="Delete a sync source (admin of the collection)",
    description="Its unfinished run is cancelled and its history forgotten. Its documents stay in the collection "
    "unless `remove_documents=true`.",
)
async def delete_source(
    source_id: SourceId,
    state: State,
    key: Admin,
    remove_documents: Annotated[bool, Query(description="Also remove the documents the source ingested")] = False,
) -> None:
    source = await _source_for(state, key, Role.ADMIN, source_id)
    ingest = ingest_adapter(state.ingest, source.collection) if remove_documents else None
    await asyncio.to_thread(state.sources.delete, source_id, remove_documents=remove_documents, ingest=ingest)


@router.post(
    "/{source_id}/runs",
    response_model=SyncRunOut,
    status_code=202,
    responses=_CONFLICT,
    summary="Start a run of the source now (a job)",
    description="The run is a job (`/jobs/{run_id}`: progress, cancel, retry). 409 while another run of the source "
    "is queued or running.",
)
async def start_run(source_id: SourceId, state: State, key: Writer) -> SyncRunOut:
    await _source_for(state, key, Role.WRITER, source_id)
    return run_out(await asyncio.to_thread(state.sources.start_run, source_id))


@router.get(
    "/{source_id}/runs",
    response_model=SyncRunPage,
    responses=_NOT_FOUND,
    summary="The source's runs, newest first (paged), with per-entry outcomes on request",
)
async def list_runs(
    source_id: SourceId,
    state: State,
    key: Reader,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    entries: Annotated[bool, Query(description="Include each run's per-entry outcomes")] = False,
    entries_limit: Annotated[int, Query(ge=1, le=10_000, description="Most entries per run")] = 1000,
) -> SyncRunPage:
    await _source_for(state, key, Role.READER, source_id)

    def read() -> SyncRunPage:
        runs, total = state.sources.runs(source_id, offset=offset, limit=limit)
        out = []
        for run in runs:
            listed = None
            if entries:
                listed = [
                    RunEntryOut(
                        key=e.key,
                        outcome=e.outcome,
                        status=e.status,
                        document_id=e.document_id,
                        error=e.error,
                        error_code=e.error_code,
                    )
                    for e in state.sources.run_entries(run.id, limit=entries_limit)
                ]
            out.append(run_out(run, listed))
        return SyncRunPage(total=total, offset=offset, limit=limit, runs=out)

    return await asyncio.to_thread(read)
