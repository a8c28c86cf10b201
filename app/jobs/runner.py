"""Running a job: file by file through the ordinary `IngestService`, every step recorded in the `JobStore`.

The stage (parsing, embedding, writing) and the progress (pages, chunks, files) come from the pipeline's component
runs (`app.timing.watch_components`). The runner holds a lease on the job and renews it while it works. A file that
had run before (its worker died, or it failed and is retried) has its chunks deleted before it is indexed again, so a
document is never left half-written; a job whose spooled files are gone is failed with that reason.

A job records its collection's generation (`CollectionService.generation`) when it is submitted. Dropping the
collection moves the generation on (and cancels the job): the runner checks it before each pipeline step and again
after a file is written; a file written into a collection dropped meanwhile is removed, the job ends cancelled and
the collection is not registered again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from haystack import logging
from haystack.document_stores.errors import DocumentStoreError

from app.blobs import BlobStore, LocalBlobStore
from app.errors import ExtractionError, RagError
from app.jobs.models import FileState, FileStatus, Job, JobFile, JobState
from app.jobs.store import JobStore, new_owner_id
from app.services.file_checks import looks_like_pdf
from app.services.ingest import IngestResult, IngestService
from app.timing import watch_components
from app.upstream import upstream_error

logger = logging.getLogger(__name__)


class JobInterruptedError(Exception):
    """Raised inside a running pipeline to stop it: the job was cancelled or its worker is shutting down."""

    def __init__(self, *, cancelled: bool) -> None:
        super().__init__("job cancelled" if cancelled else "worker shutting down")
        self.cancelled = cancelled

    def __reduce__(self) -> tuple[Any, ...]:  # raised in an indexing worker process, re-raised in the server
        return _interrupted, (self.cancelled,)


def _interrupted(cancelled: bool) -> JobInterruptedError:
    return JobInterruptedError(cancelled=cancelled)


def stage_of(name: str, type_name: str) -> JobState:
    """The job stage a component belongs to: writers write, embedders embed, everything before them parses."""
    if "Writer" in type_name or name == "writer":
        return JobState.WRITING
    if "Embedder" in type_name:
        return JobState.EMBEDDING
    return JobState.PARSING


class _FileProgress:
    """A `ComponentWatcher` turning one file's component runs into job stage and progress updates."""

    def __init__(self, store: JobStore, job: Job, file: JobFile, should_stop: Callable[[], bool | None]) -> None:
        self.store, self.job, self.file, self.should_stop = store, job, file, should_stop
        self.stage = JobState.PARSING
        self.writing = 0

    def started(self, name: str, type_name: str) -> None:
        stop = self.should_stop()
        if stop is not None:
            raise JobInterruptedError(cancelled=stop)
        stage = stage_of(name, type_name)
        if stage != self.stage:
            if self.stage == JobState.PARSING:  # every page of the file has been read
                self.store.update_file(self.job.id, self.file.index, pages_done=self.file.pages_total)
            self.stage = stage
            self.store.set_state(self.job.id, stage)

    def received(self, name: str, type_name: str, inputs: dict[str, Any]) -> None:
        documents = inputs.get("documents")
        if not isinstance(documents, list):
            return
        stage = stage_of(name, type_name)
        if stage == JobState.EMBEDDING:  # split: the file's chunk count is known
            self.store.update_file(self.job.id, self.file.index, chunks_total=len(documents))
        elif stage == JobState.WRITING:
            self.writing = len(documents)

    def returned(self, name: str, type_name: str, outputs: dict[str, Any]) -> None:
        if stage_of(name, type_name) == JobState.WRITING:
            self.store.update_file(self.job.id, self.file.index, chunks_done=self.writing)


class JobRunner:
    """Runs jobs through an `IngestService`, one file at a time, recording every step in the `JobStore`."""

    def __init__(
        self,
        store: JobStore,
        ingest: IngestService,
        spool: BlobStore | Path,
        *,
        lease_seconds: float = 30.0,
        on_indexed: Callable[[str, int], Any] | None = None,
        generation_of: Callable[[str], int] | None = None,
    ) -> None:
        """`on_indexed(collection, generation)` is told once a job has indexed something (registers the collection
        unless it was dropped since); `generation_of(collection)` is the collection's current generation. `spool`:
        where the uploads wait (a folder is a `LocalBlobStore`)."""
        self.store = store
        self.ingest = ingest
        self.blobs: BlobStore = LocalBlobStore(spool) if isinstance(spool, Path) else spool
        self.lease_seconds = lease_seconds
        self.on_indexed = on_indexed
        self.generation_of = generation_of
        self.owner = new_owner_id()

    def run(
        self,
        job_id: str,
        *,
        slot: Callable[[], AbstractContextManager[Any]] = contextlib.nullcontext,
        stopping: threading.Event | None = None,
    ) -> bool:
        """Run a job to its end (False: another live worker has it, or it is finished); resumable at any point."""
        if not self.store.claim(job_id, self.owner, self.lease_seconds):
            return False
        done = threading.Event()
        heartbeat = threading.Thread(target=self._heartbeat, args=(job_id, done), daemon=True)
        heartbeat.start()
        try:
            job = self.store.get(job_id)
            logger.info(
                "Running job {job_id}: {files} files into {collection}",
                job_id=job_id,
                files=len(job.files),
                collection=job.collection,
            )
            for file in job.files:
                if file.state not in (FileState.QUEUED, FileState.RUNNING):
                    continue
                if self.store.cancel_requested(job_id) or self._dropped(job):
                    break
                if stopping is not None and stopping.is_set():
                    self.store.set_state(job_id, JobState.QUEUED)
                    return False
                with slot():
                    try:
                        self._run_file(job, file, stopping)
                    except JobInterruptedError as interrupted:
                        if not interrupted.cancelled:  # shutting down: resumed by the next worker
                            self.store.update_file(
                                job_id, file.index, state=FileState.QUEUED, pages_done=0, chunks_total=0, chunks_done=0
                            )
                            self.store.set_state(job_id, JobState.QUEUED)
                            return False
                        self.store.update_file(job_id, file.index, state=FileState.SKIPPED)
                        break
            self._finish(job_id)
            return True
        finally:
            done.set()
            heartbeat.join(timeout=5)
            self.store.release(job_id, self.owner)

    def _heartbeat(self, job_id: str, done: threading.Event) -> None:
        while not done.wait(self.lease_seconds / 3):
            self.store.renew(job_id, self.owner, self.lease_seconds)

    def _dropped(self, job: Job) -> bool:
        """True when the job's collection was dropped after the job was submitted (the job is then cancelled)."""
        if self.generation_of is None or self.generation_of(job.collection) == job.generation:
            return False
        logger.info(
            "Job {job_id}: collection {collection} was dropped while the job ran; cancelling it",
            job_id=job.id,
            collection=job.collection,
        )
        self.store.request_cancel(job.id)
        return True

    def _should_stop(self, job: Job, stopping: threading.Event | None) -> bool | None:
        """None: go on; True: cancelled (or its collection dropped); False: shutting down."""
        if self.store.cancel_requested(job.id) or self._dropped(job):
            return True
        if stopping is not None and stopping.is_set():
            return False
        return None

    def index_file(self, job: Job, file: JobFile, data: bytes, stopping: Any = None) -> IngestResult:
        """Index one file of a job, recording its stage and progress (`stopping`: anything with `is_set()`)."""
        if not file.pages_total and looks_like_pdf(data):  # not counted by the upload route: counted here, once
            try:
                counted = self.ingest.count_pdf_pages(data, file.filename)
            except ExtractionError as error:  # too slow to read (parse_timeout) or it crashed its worker
                return IngestResult(
                    document_id=file.document_id,
                    filename=file.filename,
                    content_type=file.content_type,
                    status="failed",
                    error=error.message,
                    error_code=error.code,
                )
            file = dataclasses.replace(file, pages_total=counted)
            self.store.update_file(job.id, file.index, pages_total=counted)
        progress = _FileProgress(self.store, job, file, lambda: self._should_stop(job, stopping))
        with watch_components(progress):
            return self.ingest.ingest_bytes(
                data,
                file.filename,
                collection=job.collection,
                tags=job.tags,
                content_type=file.content_type,
                pdf_pages=file.pages_total or None,  # counted by the upload route, else counted here (in a worker)
            )

    def _run_file(self, job: Job, file: JobFile, stopping: threading.Event | None) -> None:
        self.store.update_file(
            job.id,
            file.index,
            state=FileState.RUNNING,
            attempts=file.attempts + 1,
            pages_done=0,
            chunks_total=0,
            chunks_done=0,
        )
        self.store.set_state(job.id, JobState.PARSING)
        key = f"{job.id}/{file.index}"
        try:
            data = self.blobs.get(key)
        except OSError as error:
            self.store.update_file(
                job.id,
                file.index,
                state=FileState.FAILED,
                status=FileStatus.FAILED,
                error_code="spool_missing",
                error=f"the spooled upload is gone ({error.strerror or error}); upload the file again",
            )
            return
        try:
            if file.attempts:  # run before (its worker died, or it failed): what it wrote may be partial
                removed = self.ingest.discard(job.collection, file.document_id)
                logger.info(
                    "Job {job_id}: {file} is indexed again ({removed} earlier chunks removed first)",
                    job_id=job.id,
                    file=file.filename,
                    removed=removed,
                )
            index_in_worker = getattr(self.ingest, "index_job_file", None)  # WorkerIngestService: another process
            if callable(index_in_worker):
                result = index_in_worker(job, file, data, stopping)
            else:
                result = self.index_file(job, file, data, stopping)
            if result.status == FileStatus.INDEXED and self._dropped(job):  # dropped while it was being written
                removed = self.ingest.discard(job.collection, file.document_id)
                logger.info(
                    "Job {job_id}: {file} was written into a dropped collection; {removed} chunks removed",
                    job_id=job.id,
                    file=file.filename,
                    removed=removed,
                )
                raise JobInterruptedError(cancelled=True)
        except (RagError, DocumentStoreError) as error:  # store or remote embedder down: the file fails, retryable
            upstream = error if isinstance(error, RagError) else upstream_error(error)
            result = IngestResult(
                document_id=file.document_id,
                filename=file.filename,
                content_type=file.content_type,
                status="failed",  # an IngestResult's status is FileStatus's values
                error=upstream.message if upstream is not None else f"document store error: {error}",
                error_code=upstream.code if upstream is not None else "store_error",
            )
        failed = result.status == FileStatus.FAILED
        self.store.update_file(
            job.id,
            file.index,
            state=FileState.FAILED if failed else FileState.DONE,
            status=result.status,
            content_type=result.content_type,
            pages=result.pages,
            chunks=result.chunks,
            error=result.error,
            error_code=result.error_code,
            duration_ms=round(result.duration_ms, 1),
            pages_total=file.pages_total or result.pages or 1,
            pages_done=file.pages_total or result.pages or 1,
            chunks_done=0 if failed else result.chunks,
            chunks_total=0 if failed else result.chunks,
        )
        if not failed:
            self.blobs.delete(key)

    def _finish(self, job_id: str) -> None:
        job = self.store.get(job_id)
        if not job.cancel_requested and self._dropped(job):  # dropped after its last file was written
            job = self.store.get(job_id)
        if job.cancel_requested:
            self.store.skip_unfinished(job_id)
            job = self.store.get(job_id)
        states = [f.state for f in job.files]
        if job.cancel_requested:
            self.store.set_state(job_id, JobState.CANCELLED)
        elif states and all(state == FileState.FAILED for state in states):
            codes = {f.error_code for f in job.files}
            reason = (
                "the spooled files are gone (the job was interrupted and its uploads are no longer on disk)"
                if codes == {"spool_missing"}
                else "no file could be indexed"
            )
            self.store.set_state(job_id, JobState.FAILED, error=reason)
        else:
            self.store.set_state(job_id, JobState.DONE)
        if self.on_indexed is not None and any(
            f.status in (FileStatus.INDEXED, FileStatus.DUPLICATE) for f in job.files
        ):
            self.on_indexed(job.collection, job.generation)
        if not any(state in (FileState.FAILED, FileState.SKIPPED) for state in states):
            self.blobs.remove_empty_folder(job_id)
        logger.info("Job {job_id} finished: {state}", job_id=job_id, state=self.store.get(job_id).state)
