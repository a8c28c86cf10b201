"""What the API does with jobs: submit (spool + record + notify), read, cancel, retry; and the retention sweep."""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from haystack import logging

from app.blobs import BlobStore, LocalBlobStore
from app.jobs.models import Job, JobState, UploadedFile
from app.jobs.store import JobStore
from app.services.file_checks import looks_like_pdf
from app.services.naming import document_id_for, guess_content_type

logger = logging.getLogger(__name__)

DAY_SECONDS = 86_400
JOB_ID = re.compile(r"[0-9a-f]{32}")  # `uuid4().hex`: the only folders of the spool the sweep may remove


@dataclass
class SweepReport:
    """What one retention pass removed."""

    uploads_removed: int  # jobs whose spooled uploads were released (a retry of them answers 410)
    jobs_deleted: int  # finished jobs deleted from the table
    folders_removed: int  # spool folders deleted (of those jobs, and leftovers of jobs never recorded)
    bytes_freed: int


class JobService:
    """Submits jobs (their uploads spooled as `<id>/<n>` blobs, durable, before the job is recorded) and reads,
    cancels and retries them. `notify` tells the worker(s) a job is ready (the embedded worker, or the Redis queue)."""

    def __init__(
        self,
        store: JobStore,
        spool: BlobStore | Path,
        *,
        notify: Callable[[str], None] | None = None,
        generation_of: Callable[[str], int] | None = None,
        retention_days: int = 0,
        history_days: int = 0,
    ) -> None:
        """`generation_of`: a collection's current generation (`CollectionService.generation`), recorded with each
        job so that a drop while it waits or runs cancels it. `retention_days` / `history_days`: the sweep removes a
        finished job's uploads / the job itself that many days after it finished (0: never). `spool`: where uploads
        wait (a folder is a `LocalBlobStore`)."""
        self.store = store
        self.blobs: BlobStore = LocalBlobStore(spool) if isinstance(spool, Path) else spool
        self.jobs_dir = spool if isinstance(spool, Path) else None  # the folder of a local spool (tests read it)
        self.notify: Callable[[str], None] = notify or (lambda _job_id: None)
        self.generation_of = generation_of
        self.retention_days = retention_days
        self.history_days = history_days

    def submit(self, collection: str, tags: dict[str, Any], files: Iterable[UploadedFile]) -> Job:
        """Spool the files (durably), record the job, then tell the worker(s).

        `files` is consumed one at a time, each spooled before the next is taken: an iterator that reads each upload
        when asked (as the upload route passes) keeps a single file in memory.
        """
        job_id = uuid.uuid4().hex
        generation = self.generation_of(collection) if self.generation_of is not None else 0
        specs = [self._spool(job_id, index, upload, collection) for index, upload in enumerate(files)]
        self.blobs.sync_folder(job_id)
        job = self.store.create(job_id, collection, tags, specs, generation=generation)
        logger.info(
            "Queued job {job_id}: {files} files into {collection}",
            job_id=job_id,
            files=len(specs),
            collection=collection,
        )
        self.notify(job_id)
        return job

    def _spool(self, job_id: str, index: int, upload: UploadedFile, collection: str) -> dict[str, Any]:
        """Write one file of a job to the spool as `<id>/<index>` (durably); its row for the store."""
        spec: dict[str, Any] = {
            "filename": Path(upload.filename or "upload").name,
            "content_type": upload.content_type,
            "size": len(upload.data or b""),
            "document_id": "",
            "pages_total": 1,
            "spooled": upload.data is not None,
            "error": upload.error,
            "error_code": upload.error_code,
            "tags": upload.tags or {},
            "split": upload.split,
            "source_id": upload.source_id,
        }
        if upload.data is None:  # refused before spooling (too large): recorded as failed
            spec["content_type"] = guess_content_type(spec["filename"], upload.content_type)
            return spec
        spec["document_id"] = document_id_for(collection, hashlib.sha256(upload.data).hexdigest())
        # A PDF's pages are counted by the upload route (its threshold) or, when it did not, by the runner in a parser
        # worker (0 until then): submitting never waits for a parser.
        unknown = 0 if looks_like_pdf(upload.data) else 1
        spec["pages_total"] = upload.pdf_pages if upload.pdf_pages is not None else unknown
        self.blobs.put(f"{job_id}/{index}", upload.data)
        return spec

    def get(self, job_id: str) -> Job:
        return self.store.get(job_id)

    def recent(
        self,
        *,
        collection: str | None = None,
        within: frozenset[str] | None = None,
        excluding: frozenset[str] | None = None,
        state: JobState | None = None,
        offset: int = 0,
        limit: int = 50,
        acls: list[str] | None = None,
    ) -> tuple[list[Job], int]:
        """Newest first, optionally of one collection (or only those `within`, none of those `excluding`) or in one
        state; and the total. `acls`: only jobs whose documents' access list id is one of these (or public)."""
        return self.store.recent(
            collection=collection,
            within=within,
            excluding=excluding,
            state=state,
            offset=offset,
            limit=limit,
            acls=acls,
        )

    def cancel(self, job_id: str) -> Job:
        return self.store.cancel(job_id)

    def cancel_collection(self, collection: str) -> list[str]:
        """Cancel every unfinished job of a collection (it is being dropped)."""
        cancelled = self.store.cancel_collection(collection)
        if cancelled:
            logger.info(
                "Collection {collection} dropped: {jobs} unfinished jobs cancelled",
                collection=collection,
                jobs=len(cancelled),
            )
        return cancelled

    def retry(self, job_id: str) -> Job:
        generation = None
        if self.generation_of is not None:
            generation = self.generation_of(self.store.get(job_id).collection)
        job = self.store.retry(job_id, generation=generation)
        self.notify(job_id)
        return job

    def sweep(self) -> SweepReport:
        """Apply the retention: remove the spooled uploads of jobs finished more than `retention_days` ago and delete
        the jobs finished more than `history_days` ago (the table first, then the folders: a job being retried at the
        same moment either keeps its uploads or answers 410). A spool folder of no job (a submission interrupted
        before it was recorded) goes once it is older than the retention; a folder whose name is no job id is never
        touched (the Files API's contents share a bucket root without prefix). Safe to run from several processes."""
        now = self.store.now()  # the database's time, as the jobs' `finished_at`
        uploads_before = now - self.retention_days * DAY_SECONDS if self.retention_days else None
        rows_before = now - self.history_days * DAY_SECONDS if self.history_days else None
        swept = self.store.sweep(uploads_before=uploads_before, rows_before=rows_before)
        released = set(swept.uploads_removed) | set(swept.deleted)
        folders = self.blobs.folders()
        owners = self.store.spool_owners(sorted(folders))
        removed = freed = 0
        for folder, written in folders.items():
            if not JOB_ID.fullmatch(folder):  # not a job's (another store's objects under the same bucket root)
                continue
            needed = owners.get(folder)
            if needed is None and folder not in released:  # no job: a submission that was never recorded
                needed = uploads_before is None or written >= uploads_before
            if needed:
                continue
            freed += self.blobs.delete_folder(folder)
            removed += 1
        report = SweepReport(
            uploads_removed=len(swept.uploads_removed),
            jobs_deleted=len(swept.deleted),
            folders_removed=removed,
            bytes_freed=freed,
        )
        if removed or swept.uploads_removed or swept.deleted:
            logger.info(
                "Job retention: uploads of {uploads} jobs released, {deleted} jobs deleted, {folders} spool folders "
                "removed ({bytes} bytes)",
                uploads=report.uploads_removed,
                deleted=report.jobs_deleted,
                folders=report.folders_removed,
                bytes=report.bytes_freed,
            )
        return report
