"""Background ingestion jobs: status, list, cancel, retry (created by `POST /documents/upload` when async).

A job uploaded with an access list is seen only by the keys that may read its documents (the job records the list's
id; listings select on it in the query): for any other key it does not exist (404)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query

from app.api.auth import Reader, Writer, readable_acls
from app.api.deps import State
from app.api.schemas import AUTH_ERRORS, ErrorResponse, JobFileOut, JobOut, JobPage, JobProgress
from app.errors import NotFoundError
from app.jobs import Job, JobState
from app.services.api_keys import ApiKey, Role

router = APIRouter(prefix="/jobs", tags=["jobs"], responses=AUTH_ERRORS)
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorResponse}}
_CONFLICT: dict[int | str, dict[str, Any]] = {404: {"model": ErrorResponse}, 409: {"model": ErrorResponse}}


def job_out(job: Job) -> JobOut:
    """The API view of a job."""
    return JobOut(
        job_id=job.id,
        status_url=f"/jobs/{job.id}",
        collection=job.collection,
        state=job.state,
        error=job.error,
        cancel_requested=job.cancel_requested,
        progress=JobProgress(**job.progress),
        files=[
            JobFileOut(
                index=f.index,
                filename=f.filename,
                document_id=f.document_id,
                content_type=f.content_type,
                state=f.state,
                status=f.status,
                pages=f.pages,
                chunks=f.chunks,
                error=f.error,
                error_code=f.error_code,
                duration_ms=f.duration_ms,
                source_id=f.source_id,
                version=f.version,
                chunks_unchanged=f.chunks_unchanged,
                chunks_added=f.chunks_added,
                chunks_removed=f.chunks_removed,
            )
            for f in job.files
        ],
        created_at=job.created_at,
        updated_at=job.updated_at,
        finished_at=job.finished_at,
    )


async def _job_for(state: State, key: ApiKey, role: Role, job_id: str) -> Job:
    """The job, if the key may act on its collection with `role` (403 otherwise, 404 when unknown, beyond the key's
    tenant or when the key may not read its documents)."""
    job = await asyncio.to_thread(state.jobs.get, job_id)
    acls = await readable_acls(state, key)
    if not key.within_tenant(job.collection) or (acls is not None and job.acl is not None and job.acl not in acls):
        raise NotFoundError(f"job {job_id!r} does not exist")
    key.require(role, job.collection)
    return job


@router.get("", response_model=JobPage, summary="Recent jobs, newest first (paged); only the key's collections")
async def list_jobs(
    state: State,
    key: Reader,
    collection: Annotated[str | None, Query(description="Only the jobs of this collection")] = None,
    job_state: Annotated[JobState | None, Query(alias="state", description="Only jobs in this state")] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> JobPage:
    if collection is not None:
        key.require(Role.READER, collection)
    within, excluding = key.listing_scope()  # its collection scope within its tenant boundary
    jobs, total = await asyncio.to_thread(
        state.jobs.recent,
        collection=collection,
        within=within,
        excluding=excluding,
        state=job_state,
        offset=offset,
        limit=limit,
        acls=await readable_acls(state, key),
    )
    return JobPage(total=total, offset=offset, limit=limit, jobs=[job_out(j) for j in jobs])


@router.get("/{job_id}", response_model=JobOut, responses=_NOT_FOUND, summary="A job's state, progress and errors")
async def get_job(job_id: str, state: State, key: Reader) -> JobOut:
    return job_out(await _job_for(state, key, Role.READER, job_id))


@router.post(
    "/{job_id}/cancel",
    response_model=JobOut,
    responses=_CONFLICT,
    summary="Cancel a job",
    description="A job not yet started is cancelled at once; a running one stops before its next pipeline step "
    "(the file being indexed leaves no chunks) and its queued files are skipped. 409 when it already finished.",
)
async def cancel_job(job_id: str, state: State, key: Writer) -> JobOut:
    await _job_for(state, key, Role.WRITER, job_id)
    return job_out(await asyncio.to_thread(state.jobs.cancel, job_id))


@router.post(
    "/{job_id}/retry",
    response_model=JobOut,
    responses={**_CONFLICT, 410: {"model": ErrorResponse}},
    summary="Queue a finished job's failed (or cancelled) files again",
    description="409 when the job is still running or has no failed file to retry; 410 (`uploads_removed`) when its "
    "uploads were removed by the retention sweep (RAG_JOB_RETENTION_DAYS after the job finished).",
)
async def retry_job(job_id: str, state: State, key: Writer) -> JobOut:
    await _job_for(state, key, Role.WRITER, job_id)
    return job_out(await asyncio.to_thread(state.jobs.retry, job_id))
