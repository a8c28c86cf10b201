"""Running a job's files: each one claimed, leased and indexed on its own through the ordinary `IngestService`, every
step recorded in the `JobStore`.

One unit of work is one file: a runner claims a file (its lease, and a fence that counts the file's claims), indexes
it and ends it; the files of one job may run on several workers at once and the job's state is aggregated from its
files (whoever ends the last one finishes the job and tells `on_indexed`). The stage (parsing, embedding, writing) and
the progress (pages, chunks) come from the pipeline's component runs (`app.timing.watch_components`).

The runner renews its lease while it works. When a renewal is refused (the lease ran out and another worker claimed
the file) the lease is lost: the runner stops before the pipeline's next component (in particular before the
writer), and every write it still makes to the file is conditioned on its fence, so it changes nothing. A file that
had run before (its worker died or stopped, or it failed and is retried) has its chunks deleted before it is indexed
again, so a document is never left half-written; a file whose spooled upload is gone fails with that reason.

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
from app.errors import ExtractionError, RagError, UpstreamError
from app.jobs.models import FileState, FileStatus, Job, JobFile, JobState
from app.jobs.store import FileLease, JobStore, LeaseLostError, new_owner_id
from app.services.access import ACCESS_TAG
from app.services.file_checks import looks_like_pdf
from app.services.ingest import IngestResult, IngestService, on_twin_wait
from app.sync.runner import SYNC_CONTENT_TYPE
from app.timing import watch_components
from app.upstream import upstream_error

logger = logging.getLogger(__name__)

Slot = Callable[[], AbstractContextManager[Any]]
# A sync run (`app.sync`): run(run_id, should_stop=..., progress=...) -> None, or why the run failed as a whole.
SyncRun = Callable[..., str | None]


class JobInterruptedError(Exception):
    """Raised inside a running pipeline to stop it: the job was cancelled, the worker is shutting down, or it lost its
    lease on the file."""

    def __init__(self, *, cancelled: bool, lost: bool = False) -> None:
        reason = "lease lost" if lost else "job cancelled" if cancelled else "worker shutting down"
        super().__init__(reason)
        self.cancelled = cancelled
        self.lost = lost

    def __reduce__(self) -> tuple[Any, ...]:  # raised in an indexing worker process, re-raised in the server
        return _interrupted, (self.cancelled, self.lost)


def _interrupted(cancelled: bool, lost: bool = False) -> JobInterruptedError:
    return JobInterruptedError(cancelled=cancelled, lost=lost)


def stage_of(name: str, type_name: str) -> JobState:
    """The job stage a component belongs to: writers write, embedders embed, everything before them parses."""
    if "Writer" in type_name or name == "writer":
        return JobState.WRITING
    if "Embedder" in type_name:
        return JobState.EMBEDDING
    return JobState.PARSING


class _FileProgress:
    """A `ComponentWatcher` turning one file's component runs into stage and progress updates of its (leased) row.

    `started` is where a run stops: before each component `should_stop` is asked (cancelled, shutting down, or the
    lease lost), so a runner that lost its file never reaches the writer."""

    def __init__(
        self, store: JobStore, lease: FileLease, file: JobFile, should_stop: Callable[[], JobInterruptedError | None]
    ) -> None:
        self.store, self.lease, self.file, self.should_stop = store, lease, file, should_stop
        self.stage = JobState.PARSING
        self.writing = 0

    def started(self, name: str, type_name: str) -> None:
        stop = self.should_stop()
        if stop is not None:
            raise stop
        stage = stage_of(name, type_name)
        if stage != self.stage:
            values: dict[str, Any] = {"stage": stage}
            if self.stage == JobState.PARSING:  # every page of the file has been read
                values["pages_done"] = self.file.pages_total
            self.stage = stage
            self.store.progress(self.lease, **values)

    def received(self, name: str, type_name: str, inputs: dict[str, Any]) -> None:
        documents = inputs.get("documents")
        if not isinstance(documents, list):
            return
        stage = stage_of(name, type_name)
        if stage == JobState.EMBEDDING:  # split: the file's chunk count is known
            self.store.progress(self.lease, chunks_total=len(documents))
        elif stage == JobState.WRITING:
            self.writing = len(documents)

    def returned(self, name: str, type_name: str, outputs: dict[str, Any]) -> None:
        if stage_of(name, type_name) == JobState.WRITING:
            self.store.progress(self.lease, chunks_done=self.writing)


class _Heartbeat:
    """Renews a file's lease every third of it on a thread of its own; a refused renewal marks the lease `lost`."""

    def __init__(self, store: JobStore, lease: FileLease, seconds: float) -> None:
        self.store, self.lease, self.seconds = store, lease, seconds
        self.lost = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="rag-job-lease", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(timeout=5)

    def _beat(self) -> None:
        while not self._done.wait(self.seconds / 3):
            if not self.store.renew(self.lease, self.seconds):
                logger.warning(
                    "Job {job_id}: the lease on file {index} was lost; its runner stops before its next step",
                    job_id=self.lease.job_id,
                    index=self.lease.index,
                )
                self.lost.set()
                return


class JobRunner:
    """Runs job files through an `IngestService`: each file claimed and leased on its own, every step recorded in the
    `JobStore` through the lease (fenced)."""

    def __init__(
        self,
        store: JobStore,
        ingest: IngestService,
        spool: BlobStore | Path,
        *,
        lease_seconds: float = 30.0,
        on_indexed: Callable[[str, int], Any] | None = None,
        generation_of: Callable[[str], int] | None = None,
        sync: SyncRun | None = None,
    ) -> None:
        """`on_indexed(collection, generation)` is told once a job has indexed something (registers the collection
        unless it was dropped since); `generation_of(collection)` is the collection's current generation. `spool`:
        where the uploads wait (a folder is a `LocalBlobStore`). `sync`: runs a sync run's job (`SyncRunner.run`)."""
        self.store = store
        self.ingest = ingest
        self.blobs: BlobStore = LocalBlobStore(spool) if isinstance(spool, Path) else spool
        self.lease_seconds = lease_seconds
        self.on_indexed = on_indexed
        self.generation_of = generation_of
        self.sync = sync
        self.owner = new_owner_id()

    # -- what the workers call

    def claim_next(self) -> FileLease | None:
        """Claim the next file nobody holds, of any job (oldest job first); None when there is none."""
        return self.store.claim(None, self.owner, self.lease_seconds)

    def run_next(self, *, slot: Slot = contextlib.nullcontext, stopping: threading.Event | None = None) -> bool:
        """Claim the next file of any job and run it (False: nothing to claim)."""
        lease = self.claim_next()
        if lease is None:
            return False
        self.run_claimed(lease, slot=slot, stopping=stopping)
        return True

    def run_file(
        self,
        job_id: str,
        index: int,
        *,
        slot: Slot = contextlib.nullcontext,
        stopping: threading.Event | None = None,
    ) -> bool:
        """Claim file `index` of a job and run it (False: it is finished, or a live worker holds it)."""
        lease = self.store.claim(job_id, self.owner, self.lease_seconds, index=index)
        if lease is None:
            return False
        self.run_claimed(lease, slot=slot, stopping=stopping)
        return True

    def run(self, job_id: str, *, slot: Slot = contextlib.nullcontext, stopping: threading.Event | None = None) -> bool:
        """Run the files of a job that nobody else holds, one after another, until none is left to claim (other
        workers may run other files of it meanwhile). False: there was none (finished, or all held)."""
        ran = False
        while stopping is None or not stopping.is_set():
            lease = self.store.claim(job_id, self.owner, self.lease_seconds)
            if lease is None:
                break
            ran = True
            self.run_claimed(lease, slot=slot, stopping=stopping)
        return ran

    def run_claimed(
        self, lease: FileLease, *, slot: Slot = contextlib.nullcontext, stopping: threading.Event | None = None
    ) -> None:
        """Run a file this runner claimed to its end, renewing its lease meanwhile; when it is stopped (shutting down,
        lease lost) the file is released for the next worker (a lost lease's release changes nothing)."""
        with _Heartbeat(self.store, lease, self.lease_seconds) as heartbeat, slot():
            self._run_file(lease, heartbeat.lost, stopping)

    def settle(self) -> int:
        """Finish the jobs whose files have all ended but which were never finished (left by a worker of an earlier
        release), as their last file's runner would have; how many. Run when a worker starts."""
        settled = self.store.settle()
        for job_id, state in settled:
            self._finished(job_id, state)
        return len(settled)

    def fail(self, lease: FileLease, error: str) -> None:
        """End a claimed file as failed (the worker's boundary, after an unexpected error while running it)."""
        job = self.store.get(lease.job_id)
        self._end(lease, job, state=FileState.FAILED, status=FileStatus.FAILED, error=error, error_code="internal")

    # -- running one file

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

    def _should_stop(
        self, job: Job, lease: FileLease, stopping: Any = None, lost: threading.Event | None = None
    ) -> JobInterruptedError | None:
        """None: go on; else why to stop: the lease lost (ran out, or the file was claimed again), the job cancelled
        (or its collection dropped), or the worker shutting down."""
        if lost is not None and lost.is_set():
            return JobInterruptedError(cancelled=False, lost=True)
        held, cancel_requested = self.store.check(lease)
        if not held:
            return JobInterruptedError(cancelled=False, lost=True)
        if cancel_requested or self._dropped(job):
            return JobInterruptedError(cancelled=True)
        if stopping is not None and stopping.is_set():
            return JobInterruptedError(cancelled=False)
        return None

    def index_file(
        self, job: Job, file: JobFile, data: bytes, stopping: Any = None, lost: threading.Event | None = None
    ) -> IngestResult:
        """Index one claimed file of a job (`file` as read after its claim: its owner and fence are the lease),
        recording its stage and progress through the lease (`stopping`: anything with `is_set()`)."""
        lease = FileLease(job.id, file.index, file.owner or "", file.fence)
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
            self.store.progress(lease, pages_total=counted)
        progress = _FileProgress(self.store, lease, file, lambda: self._should_stop(job, lease, stopping, lost))

        def stop_waiting_for_a_twin() -> None:  # cancelled, shutting down or lease lost while a twin indexes it
            stop = self._should_stop(job, lease, stopping, lost)
            if stop is not None:
                raise stop

        with watch_components(progress), on_twin_wait(stop_waiting_for_a_twin):
            tags = {**job.tags, **file.tags}
            access = tags.pop(ACCESS_TAG, None)  # the job's access list rides with its tags (a reserved name)
            return self.ingest.ingest_bytes(
                data,
                file.filename,
                collection=job.collection,
                tags=tags,
                access=access,
                content_type=file.content_type,
                pdf_pages=file.pages_total or None,  # counted by the upload route, else counted here (in a worker)
                split=(file.split[0], file.split[1]) if file.split else None,  # a vector store's chunking
                source_id=file.source_id,
            )

    def _run_file(self, lease: FileLease, lost: threading.Event, stopping: threading.Event | None) -> None:
        job = self.store.get(lease.job_id)
        file = job.files[lease.index]
        logger.info(
            "Running job {job_id}: file {index} ({file}, attempt {attempt}) into {collection}",
            job_id=job.id,
            index=file.index,
            file=file.filename,
            attempt=file.attempts,
            collection=job.collection,
        )
        stop = self._should_stop(job, lease, stopping, lost)
        if stop is None and (file.owner, file.fence) != (lease.owner, lease.fence):
            stop = JobInterruptedError(cancelled=False, lost=True)
        if stop is None:
            self.store.progress(lease, stage=JobState.PARSING)
        if file.content_type == SYNC_CONTENT_TYPE:  # a sync run: its entries are read from the source, not the spool
            self._run_sync(lease, job, stop, lambda: self._should_stop(job, lease, stopping, lost))
            return
        key = f"{job.id}/{file.index}"
        try:
            if stop is not None:
                raise stop
            try:
                data = self.blobs.get(key)
            except OSError as error:
                self._end(
                    lease,
                    job,
                    state=FileState.FAILED,
                    status=FileStatus.FAILED,
                    error_code="spool_missing",
                    error=f"the spooled upload is gone ({error.strerror or error}); upload the file again",
                )
                return
            except UpstreamError as error:  # the object store is down: the upload is still there, retry the job later
                self._end(
                    lease,
                    job,
                    state=FileState.FAILED,
                    status=FileStatus.FAILED,
                    error_code=error.code,
                    error=f"the upload could not be read from {self.blobs.where}: {error.message}; retry the job",
                )
                return
            result = self._index(job, file, data, lost, stopping)
        except JobInterruptedError as interrupted:
            if interrupted.cancelled:
                self._end(lease, job, state=FileState.SKIPPED)
                return
            # shutting down, or the lease lost: given back (a lost lease's release changes nothing)
            released = self.store.release(lease)
            logger.info(
                "Job {job_id}: {file} stopped ({reason}); {what}",
                job_id=job.id,
                file=file.filename,
                reason=str(interrupted),
                what="queued again for the next worker" if released else "another worker holds it now",
            )
            return
        failed = result.status == FileStatus.FAILED
        self._end(
            lease,
            job,
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
            document_id=result.document_id or file.document_id,  # a new version keeps its source's document id
            version=result.version,
            chunks_unchanged=result.chunks_unchanged,
            chunks_added=result.chunks_added,
            chunks_removed=result.chunks_removed,
        )

    def _run_sync(
        self, lease: FileLease, job: Job, stop: JobInterruptedError | None, should_stop: Callable[[], Any]
    ) -> None:
        """Run a sync run's job (its one file): the entries' progress as the file's pages; stopped like a file."""
        error: str | None = "this worker cannot run sync runs"
        try:
            if stop is not None:
                raise stop
            if self.sync is not None:
                error = self.sync(
                    job.id,
                    should_stop=should_stop,
                    progress=lambda done, total: self.store.progress(lease, pages_done=done, pages_total=total),
                )
        except JobInterruptedError as interrupted:
            if interrupted.cancelled:
                self._end(lease, job, state=FileState.SKIPPED)
            else:
                self.store.release(lease)
            return
        except RagError as failure:  # the run's own tables (or its source) cannot be read: the job fails, retryable
            error, code = failure.message, failure.code
        else:
            code = "sync_failed"
        self._end(
            lease,
            job,
            state=FileState.FAILED if error else FileState.DONE,
            status=FileStatus.FAILED if error else FileStatus.INDEXED,
            error=error,
            error_code=code if error else None,
        )

    def _index(
        self, job: Job, file: JobFile, data: bytes, lost: threading.Event, stopping: threading.Event | None
    ) -> IngestResult:
        """Index a claimed file (its earlier chunks removed first when it ran before); a failure of the store or of a
        remote service is the file's result."""
        try:
            # claimed before this claim (its worker died or stopped, or it failed): what it wrote may be partial
            if file.attempts > 1:
                removed = self.ingest.discard(job.collection, file.document_id)
                logger.info(
                    "Job {job_id}: {file} is indexed again ({removed} earlier chunks removed first)",
                    job_id=job.id,
                    file=file.filename,
                    removed=removed,
                )
            index_in_worker = getattr(self.ingest, "index_job_file", None)  # WorkerIngestService: another process
            if callable(index_in_worker):
                result: IngestResult = index_in_worker(job, file, data, stopping)
            else:
                result = self.index_file(job, file, data, stopping, lost)
            written = result.status in (FileStatus.INDEXED, FileStatus.UPDATED)
            if written and self._dropped(job):  # dropped while it was being written
                removed = self.ingest.discard(job.collection, result.document_id or file.document_id)
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
        return result

    def _end(self, lease: FileLease, job: Job, **values: Any) -> None:
        """Record a file's end through its lease; the spooled upload of a file done goes; the job's end follows when
        it was its last file. A lost lease: nothing is written, nothing deleted (the file's new owner needs it)."""
        try:
            finished = self.store.finish_file(lease, **values)
        except LeaseLostError:
            logger.warning(
                "Job {job_id}: file {index} was claimed by another worker meanwhile; this run's result is ignored",
                job_id=job.id,
                index=lease.index,
            )
            return
        if values["state"] == FileState.DONE:
            self.blobs.delete(f"{job.id}/{lease.index}")
        if finished is not None:
            self._finished(job.id, finished)

    def _finished(self, job_id: str, state: JobState) -> None:
        """After the job's last file ended (in this runner): register its collection, remove its spool folder."""
        job = self.store.get(job_id)
        if self.on_indexed is not None and any(
            f.status in (FileStatus.INDEXED, FileStatus.UPDATED, FileStatus.UNCHANGED, FileStatus.DUPLICATE)
            for f in job.files
        ):
            self.on_indexed(job.collection, job.generation)
        if not any(f.state in (FileState.FAILED, FileState.SKIPPED) for f in job.files):
            self.blobs.remove_empty_folder(job_id)
        logger.info("Job {job_id} finished: {state}", job_id=job_id, state=state)
