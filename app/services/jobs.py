"""Background ingestion jobs: a durable SQLite job table, spooled uploads and the workers that run them.

- An async upload spools its files to `data_dir/jobs/<id>/<n>` (fsynced) and records the job and one row per file
  in `data_dir/jobs.db` (SQLite, WAL) before it is answered. Nothing about a job lives only in memory.
- A worker runs a job file by file through the ordinary `IngestService`; the stage (parsing, embedding, writing) and
  the progress (pages, chunks, files) come from the pipeline's component runs (`app.timing.watch_components`).
- Workers hold a lease on the job they run and renew it while they work. A job whose worker died (its lease ran out,
  or its process is gone on this host) is taken over and resumed: a file that was being indexed when the worker died
  has its chunks deleted and is indexed again, so a document is never left half-written; a job whose spooled files
  are gone is failed with that reason.
- Embedded mode (default): an in-process worker (an asyncio task started by the app's lifespan) polls the table.
  Redis mode (`RAG_JOB_QUEUE=redis`): the API enqueues job ids with rq and `rag worker` processes (rq's
  `SimpleWorker`, pipelines loaded once per process) run them; the job table stays in SQLite on the shared data volume.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from haystack import logging
from haystack.document_stores.errors import DocumentStoreError

from app.errors import ConflictError, NotFoundError, RagError
from app.services.file_checks import looks_like_pdf, pdf_page_count
from app.services.ingest import IngestResult, IngestService, document_id_for, guess_content_type
from app.timing import watch_components
from app.upstream import upstream_error

logger = logging.getLogger(__name__)

ACTIVE_STATES = ("parsing", "embedding", "writing")
TERMINAL_STATES = ("done", "failed", "cancelled")
JOB_STATES = ("queued", *ACTIVE_STATES, *TERMINAL_STATES)
RQ_QUEUE_NAME = "rag-ingest"
_POLL_SECONDS = 1.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    collection TEXT NOT NULL,
    tags TEXT NOT NULL,
    state TEXT NOT NULL,
    error TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    owner TEXT,
    lease_until REAL NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    finished_at REAL
);
CREATE INDEX IF NOT EXISTS jobs_by_created ON jobs (created_at);
CREATE INDEX IF NOT EXISTS jobs_by_collection ON jobs (collection, created_at);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state);
CREATE TABLE IF NOT EXISTS job_files (
    job_id TEXT NOT NULL REFERENCES jobs (id),
    idx INTEGER NOT NULL,
    filename TEXT NOT NULL,
    content_type TEXT,
    size INTEGER NOT NULL,
    document_id TEXT NOT NULL,
    spooled INTEGER NOT NULL,
    state TEXT NOT NULL,
    status TEXT,
    pages_total INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    pages_done INTEGER NOT NULL DEFAULT 0,
    chunks_total INTEGER NOT NULL DEFAULT 0,
    chunks_done INTEGER NOT NULL DEFAULT 0,
    pages INTEGER NOT NULL DEFAULT 0,
    chunks INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    error_code TEXT,
    duration_ms REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, idx)
);
"""


class JobInterruptedError(Exception):
    """Raised inside a running pipeline to stop it: the job was cancelled or its worker is shutting down."""

    def __init__(self, *, cancelled: bool) -> None:
        super().__init__("job cancelled" if cancelled else "worker shutting down")
        self.cancelled = cancelled


@dataclass
class JobFile:
    """One file of a job: where it is in its life (`state`) and, once finished, its ingest result."""

    index: int
    filename: str
    content_type: str | None
    size: int
    document_id: str
    spooled: bool
    state: str  # queued, running, done, failed, skipped
    status: str | None  # indexed, duplicate, failed (as in a synchronous upload)
    pages_total: int
    attempts: int
    pages_done: int
    chunks_total: int
    chunks_done: int
    pages: int
    chunks: int
    error: str | None
    error_code: str | None
    duration_ms: float


@dataclass
class Job:
    """A job with its files."""

    id: str
    collection: str
    tags: dict[str, Any]
    state: str
    error: str | None
    cancel_requested: bool
    owner: str | None
    lease_until: float
    created_at: float
    updated_at: float
    finished_at: float | None
    files: list[JobFile] = field(default_factory=list)

    @property
    def progress(self) -> dict[str, int]:
        """Pages and chunks done / total, files finished / total."""
        return {
            "files_done": sum(f.state in ("done", "failed", "skipped") for f in self.files),
            "files_total": len(self.files),
            "pages_done": sum(f.pages_done for f in self.files),
            "pages_total": sum(f.pages_total for f in self.files),
            "chunks_done": sum(f.chunks_done for f in self.files),
            "chunks_total": sum(f.chunks_total for f in self.files),
        }


@dataclass
class UploadedFile:
    """A file of an async upload, as received: its bytes, or the reason it was refused before spooling."""

    filename: str
    content_type: str | None
    data: bytes | None
    error: str | None = None
    error_code: str | None = None


def new_owner_id() -> str:
    """`host:pid:random`: identifies a worker; a dead process on this host is detected from its pid."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _owner_is_dead(owner: str | None) -> bool:
    """True when `owner` is a process of this host that no longer exists (a worker killed with SIGKILL)."""
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit() or int(pid_text) == os.getpid():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class JobStore:
    """The durable job table (`jobs.db`, SQLite in WAL mode); one short connection per operation, any thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA synchronous=FULL")
        try:
            yield db
        finally:
            db.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    # -- reading

    def get(self, job_id: str) -> Job:
        """The job with its files; 404 when unknown."""
        with self._connect() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"job {job_id!r} does not exist")
            files = db.execute("SELECT * FROM job_files WHERE job_id = ? ORDER BY idx", (job_id,)).fetchall()
        return _job(row, files)

    def recent(
        self,
        *,
        collection: str | None = None,
        within: frozenset[str] | None = None,
        state: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> tuple[list[Job], int]:
        """Newest first, optionally of one collection (or only those `within`) or in one state; and the total."""
        where: list[str] = []
        params: list[Any] = []
        if collection is not None:
            where.append("collection = ?")
            params.append(collection)
        if within is not None:
            where.append(f"collection IN ({', '.join('?' * len(within))})" if within else "0")
            params.extend(sorted(within))
        if state is not None:
            where.append("state = ?")
            params.append(state)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        with self._connect() as db:
            total = int(db.execute(f"SELECT COUNT(*) FROM jobs {clause}", params).fetchone()[0])
            rows = db.execute(
                f"SELECT * FROM jobs {clause} ORDER BY created_at DESC, id LIMIT ? OFFSET ?", [*params, limit, offset]
            ).fetchall()
            jobs = []
            for row in rows:
                files = db.execute("SELECT * FROM job_files WHERE job_id = ? ORDER BY idx", (row["id"],)).fetchall()
                jobs.append(_job(row, files))
        return jobs, total

    def claimable(self) -> list[str]:
        """Unfinished jobs nobody runs: never started, or their worker's lease ran out or its process is gone."""
        now = time.time()
        with self._connect() as db:
            rows = db.execute(
                "SELECT id, owner, lease_until FROM jobs WHERE state NOT IN (?, ?, ?) ORDER BY created_at",
                TERMINAL_STATES,
            ).fetchall()
        return [r["id"] for r in rows if not r["owner"] or r["lease_until"] < now or _owner_is_dead(r["owner"])]

    def cancel_requested(self, job_id: str) -> bool:
        with self._connect() as db:
            row = db.execute("SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return bool(row and row[0])

    # -- writing

    def create(self, job_id: str, collection: str, tags: dict[str, Any], files: list[dict[str, Any]]) -> Job:
        """Record a queued job and its files (already spooled)."""
        now = time.time()
        with self._transaction() as db:
            db.execute(
                "INSERT INTO jobs (id, collection, tags, state, created_at, updated_at) "
                "VALUES (?, ?, ?, 'queued', ?, ?)",
                (job_id, collection, json.dumps(tags), now, now),
            )
            for index, spec in enumerate(files):
                db.execute(
                    "INSERT INTO job_files (job_id, idx, filename, content_type, size, document_id, spooled, state, "
                    "status, pages_total, error, error_code) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        job_id,
                        index,
                        spec["filename"],
                        spec["content_type"],
                        spec["size"],
                        spec["document_id"],
                        int(spec["spooled"]),
                        "queued" if spec["spooled"] else "failed",
                        None if spec["spooled"] else "failed",
                        spec["pages_total"],
                        spec.get("error"),
                        spec.get("error_code"),
                    ),
                )
        return self.get(job_id)

    def claim(self, job_id: str, owner: str, lease_seconds: float) -> bool:
        """Take the job for `owner` unless another live worker holds it or it is finished."""
        now = time.time()
        with self._transaction() as db:
            row = db.execute("SELECT state, owner, lease_until FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None or row["state"] in TERMINAL_STATES:
                return False
            free = not row["owner"] or row["owner"] == owner or row["lease_until"] < now or _owner_is_dead(row["owner"])
            if not free:
                return False
            db.execute(
                "UPDATE jobs SET owner = ?, lease_until = ?, updated_at = ? WHERE id = ?",
                (owner, now + lease_seconds, now, job_id),
            )
        return True

    def renew(self, job_id: str, owner: str, lease_seconds: float) -> None:
        with self._connect() as db:
            db.execute(
                "UPDATE jobs SET lease_until = ? WHERE id = ? AND owner = ?",
                (time.time() + lease_seconds, job_id, owner),
            )

    def release(self, job_id: str, owner: str) -> None:
        with self._connect() as db:
            db.execute("UPDATE jobs SET owner = NULL, lease_until = 0 WHERE id = ? AND owner = ?", (job_id, owner))

    def requeue_orphans(self) -> list[str]:
        """Jobs started by a worker that died, made unowned again (for a queue that must be told about them)."""
        now = time.time()
        orphans = []
        with self._transaction() as db:
            rows = db.execute(
                "SELECT id, owner, lease_until FROM jobs WHERE state NOT IN (?, ?, ?) AND owner IS NOT NULL",
                TERMINAL_STATES,
            ).fetchall()
            for row in rows:
                if row["lease_until"] < now or _owner_is_dead(row["owner"]):
                    db.execute("UPDATE jobs SET owner = NULL, lease_until = 0 WHERE id = ?", (row["id"],))
                    orphans.append(row["id"])
        return orphans

    def set_state(self, job_id: str, state: str, *, error: str | None = None) -> None:
        now = time.time()
        finished = now if state in TERMINAL_STATES else None
        with self._connect() as db:
            db.execute(
                "UPDATE jobs SET state = ?, error = ?, updated_at = ?, finished_at = ? WHERE id = ?",
                (state, error, now, finished, job_id),
            )

    def update_file(self, job_id: str, index: int, **values: Any) -> None:
        columns = ", ".join(f"{name} = ?" for name in values)
        with self._connect() as db:
            db.execute(
                f"UPDATE job_files SET {columns} WHERE job_id = ? AND idx = ?", (*values.values(), job_id, index)
            )
            db.execute("UPDATE jobs SET updated_at = ? WHERE id = ?", (time.time(), job_id))

    def skip_unfinished(self, job_id: str) -> None:
        with self._connect() as db:
            db.execute(
                "UPDATE job_files SET state = 'skipped' WHERE job_id = ? AND state IN ('queued', 'running')", (job_id,)
            )

    def cancel(self, job_id: str) -> Job:
        """Ask for cancellation: a job nobody runs is cancelled at once, a running one at its next step."""
        now = time.time()
        with self._transaction() as db:
            row = db.execute("SELECT state, owner, lease_until FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"job {job_id!r} does not exist")
            if row["state"] in TERMINAL_STATES:
                raise ConflictError(f"job {job_id!r} is already {row['state']}")
            db.execute("UPDATE jobs SET cancel_requested = 1, updated_at = ? WHERE id = ?", (now, job_id))
            if not row["owner"] or row["lease_until"] < now or _owner_is_dead(row["owner"]):
                db.execute(
                    "UPDATE job_files SET state = 'skipped' WHERE job_id = ? AND state IN ('queued', 'running')",
                    (job_id,),
                )
                db.execute(
                    "UPDATE jobs SET state = 'cancelled', finished_at = ?, owner = NULL WHERE id = ?", (now, job_id)
                )
        return self.get(job_id)

    def retry(self, job_id: str) -> Job:
        """Queue the failed (and cancelled) files of a finished job again; 409 when there are none."""
        now = time.time()
        with self._transaction() as db:
            row = db.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"job {job_id!r} does not exist")
            if row["state"] not in TERMINAL_STATES:
                raise ConflictError(f"job {job_id!r} is still {row['state']}: retry it once it has finished")
            retried = db.execute(
                "UPDATE job_files SET state = 'queued', status = NULL, error = NULL, error_code = NULL, pages = 0, "
                "chunks = 0, pages_done = 0, chunks_total = 0, chunks_done = 0, duration_ms = 0 "
                "WHERE job_id = ? AND state IN ('failed', 'skipped') AND spooled = 1",
                (job_id,),
            ).rowcount
            if not retried:
                raise ConflictError(f"job {job_id!r} has no failed files that can be retried")
            db.execute(
                "UPDATE jobs SET state = 'queued', error = NULL, cancel_requested = 0, finished_at = NULL, "
                "owner = NULL, lease_until = 0, updated_at = ? WHERE id = ?",
                (now, job_id),
            )
        return self.get(job_id)


def _job(row: sqlite3.Row, files: list[sqlite3.Row]) -> Job:
    return Job(
        id=row["id"],
        collection=row["collection"],
        tags=json.loads(row["tags"]),
        state=row["state"],
        error=row["error"],
        cancel_requested=bool(row["cancel_requested"]),
        owner=row["owner"],
        lease_until=row["lease_until"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        finished_at=row["finished_at"],
        files=[
            JobFile(
                index=f["idx"],
                filename=f["filename"],
                content_type=f["content_type"],
                size=f["size"],
                document_id=f["document_id"],
                spooled=bool(f["spooled"]),
                state=f["state"],
                status=f["status"],
                pages_total=f["pages_total"],
                attempts=f["attempts"],
                pages_done=f["pages_done"],
                chunks_total=f["chunks_total"],
                chunks_done=f["chunks_done"],
                pages=f["pages"],
                chunks=f["chunks"],
                error=f["error"],
                error_code=f["error_code"],
                duration_ms=f["duration_ms"],
            )
            for f in files
        ],
    )


def stage_of(name: str, type_name: str) -> str:
    """The job stage a component belongs to: writers write, embedders embed, everything before them parses."""
    if "Writer" in type_name or name == "writer":
        return "writing"
    if "Embedder" in type_name:
        return "embedding"
    return "parsing"


class _FileProgress:
    """A `ComponentWatcher` turning one file's component runs into job stage and progress updates."""

    def __init__(self, store: JobStore, job: Job, file: JobFile, should_stop: Callable[[], bool | None]) -> None:
        self.store, self.job, self.file, self.should_stop = store, job, file, should_stop
        self.stage = "parsing"
        self.writing = 0

    def started(self, name: str, type_name: str) -> None:
        stop = self.should_stop()
        if stop is not None:
            raise JobInterruptedError(cancelled=stop)
        stage = stage_of(name, type_name)
        if stage != self.stage:
            if self.stage == "parsing":  # every page of the file has been read
                self.store.update_file(self.job.id, self.file.index, pages_done=self.file.pages_total)
            self.stage = stage
            self.store.set_state(self.job.id, stage)

    def received(self, name: str, type_name: str, inputs: dict[str, Any]) -> None:
        documents = inputs.get("documents")
        if not isinstance(documents, list):
            return
        stage = stage_of(name, type_name)
        if stage == "embedding":  # split: the file's chunk count is known
            self.store.update_file(self.job.id, self.file.index, chunks_total=len(documents))
        elif stage == "writing":
            self.writing = len(documents)

    def returned(self, name: str, type_name: str, outputs: dict[str, Any]) -> None:
        if stage_of(name, type_name) == "writing":
            self.store.update_file(self.job.id, self.file.index, chunks_done=self.writing)


class JobRunner:
    """Runs jobs through an `IngestService`, one file at a time, recording every step in the `JobStore`."""

    def __init__(
        self,
        store: JobStore,
        ingest: IngestService,
        jobs_dir: Path,
        *,
        lease_seconds: float = 30.0,
        on_indexed: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.ingest = ingest
        self.jobs_dir = jobs_dir
        self.lease_seconds = lease_seconds
        self.on_indexed = on_indexed  # told the collection once a job has indexed something (registers it)
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
                if file.state not in ("queued", "running"):
                    continue
                if self.store.cancel_requested(job_id):
                    break
                if stopping is not None and stopping.is_set():
                    self.store.set_state(job_id, "queued")
                    return False
                with slot():
                    try:
                        self._run_file(job, file, stopping)
                    except JobInterruptedError as interrupted:
                        if not interrupted.cancelled:  # shutting down: resumed by the next worker
                            self.store.update_file(
                                job_id, file.index, state="queued", pages_done=0, chunks_total=0, chunks_done=0
                            )
                            self.store.set_state(job_id, "queued")
                            return False
                        self.store.update_file(job_id, file.index, state="skipped")
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

    def _should_stop(self, job_id: str, stopping: threading.Event | None) -> bool | None:
        """None: go on; True: cancelled; False: shutting down."""
        if self.store.cancel_requested(job_id):
            return True
        if stopping is not None and stopping.is_set():
            return False
        return None

    def _run_file(self, job: Job, file: JobFile, stopping: threading.Event | None) -> None:
        self.store.update_file(
            job.id, file.index, state="running", attempts=file.attempts + 1, pages_done=0, chunks_total=0, chunks_done=0
        )
        self.store.set_state(job.id, "parsing")
        path = self.jobs_dir / job.id / str(file.index)
        try:
            data = path.read_bytes()
        except OSError as error:
            self.store.update_file(
                job.id,
                file.index,
                state="failed",
                status="failed",
                error_code="spool_missing",
                error=f"the spooled upload is gone ({error.strerror or error}); upload the file again",
            )
            return
        progress = _FileProgress(self.store, job, file, lambda: self._should_stop(job.id, stopping))
        try:
            if file.attempts:  # run before (its worker died, or it failed): what it wrote may be partial
                removed = self.ingest.discard(job.collection, file.document_id)
                logger.info(
                    "Job {job_id}: {file} is indexed again ({removed} earlier chunks removed first)",
                    job_id=job.id,
                    file=file.filename,
                    removed=removed,
                )
            with watch_components(progress):
                result = self.ingest.ingest_bytes(
                    data, file.filename, collection=job.collection, tags=job.tags, content_type=file.content_type
                )
        except (RagError, DocumentStoreError) as error:  # store or remote embedder down: the file fails, retryable
            upstream = error if isinstance(error, RagError) else upstream_error(error)
            result = IngestResult(
                document_id=file.document_id,
                filename=file.filename,
                content_type=file.content_type,
                status="failed",
                error=upstream.message if upstream is not None else f"document store error: {error}",
                error_code=upstream.code if upstream is not None else "store_error",
            )
        failed = result.status == "failed"
        self.store.update_file(
            job.id,
            file.index,
            state="failed" if failed else "done",
            status=result.status,
            content_type=result.content_type,
            pages=result.pages,
            chunks=result.chunks,
            error=result.error,
            error_code=result.error_code,
            duration_ms=round(result.duration_ms, 1),
            pages_done=file.pages_total,
            chunks_done=0 if failed else result.chunks,
            chunks_total=0 if failed else result.chunks,
        )
        if not failed:
            path.unlink(missing_ok=True)

    def _finish(self, job_id: str) -> None:
        job = self.store.get(job_id)
        if job.cancel_requested:
            self.store.skip_unfinished(job_id)
            job = self.store.get(job_id)
        states = [f.state for f in job.files]
        if job.cancel_requested:
            self.store.set_state(job_id, "cancelled")
        elif states and all(state == "failed" for state in states):
            codes = {f.error_code for f in job.files}
            reason = (
                "the spooled files are gone (the job was interrupted and its uploads are no longer on disk)"
                if codes == {"spool_missing"}
                else "no file could be indexed"
            )
            self.store.set_state(job_id, "failed", error=reason)
        else:
            self.store.set_state(job_id, "done")
        if self.on_indexed is not None and any(f.status in ("indexed", "duplicate") for f in job.files):
            self.on_indexed(job.collection)
        if not any(state in ("failed", "skipped") for state in states):
            with contextlib.suppress(OSError):
                (self.jobs_dir / job_id).rmdir()
        logger.info("Job {job_id} finished: {state}", job_id=job_id, state=self.store.get(job_id).state)


class JobService:
    """What the API does with jobs: submit (spool + record + notify), read, cancel, retry."""

    def __init__(self, store: JobStore, jobs_dir: Path, *, notify: Callable[[str], None] | None = None) -> None:
        self.store = store
        self.jobs_dir = jobs_dir
        self.notify: Callable[[str], None] = notify or (lambda _job_id: None)

    def submit(self, collection: str, tags: dict[str, Any], files: list[UploadedFile]) -> Job:
        """Spool the files to disk (fsynced), record the job, then tell the worker(s)."""
        job_id = self.new_job_id()
        specs = [self.spool(job_id, index, upload, collection) for index, upload in enumerate(files)]
        return self.record(job_id, collection, tags, specs)

    def new_job_id(self) -> str:
        return uuid.uuid4().hex

    def spool(self, job_id: str, index: int, upload: UploadedFile, collection: str) -> dict[str, Any]:
        """Write one file of a job to `jobs/<id>/<index>` (fsynced); its row for `record()`."""
        spec: dict[str, Any] = {
            "filename": Path(upload.filename or "upload").name,
            "content_type": upload.content_type,
            "size": len(upload.data or b""),
            "document_id": "",
            "pages_total": 1,
            "spooled": upload.data is not None,
            "error": upload.error,
            "error_code": upload.error_code,
        }
        if upload.data is None:  # refused before spooling (too large): recorded as failed
            spec["content_type"] = guess_content_type(spec["filename"], upload.content_type)
            return spec
        spec["document_id"] = document_id_for(collection, hashlib.sha256(upload.data).hexdigest())
        spec["pages_total"] = (pdf_page_count(upload.data) if looks_like_pdf(upload.data) else None) or 1
        directory = self.jobs_dir / job_id
        directory.mkdir(parents=True, exist_ok=True)
        _write_durably(directory / str(index), upload.data)
        return spec

    def record(self, job_id: str, collection: str, tags: dict[str, Any], specs: list[dict[str, Any]]) -> Job:
        """Record a job whose files are spooled, then tell the worker(s)."""
        if (self.jobs_dir / job_id).is_dir():
            _fsync_dir(self.jobs_dir / job_id)
        job = self.store.create(job_id, collection, tags, specs)
        logger.info(
            "Queued job {job_id}: {files} files into {collection}",
            job_id=job_id,
            files=len(specs),
            collection=collection,
        )
        self.notify(job_id)
        return job

    def get(self, job_id: str) -> Job:
        return self.store.get(job_id)

    def recent(self, **kwargs: Any) -> tuple[list[Job], int]:
        return self.store.recent(**kwargs)

    def cancel(self, job_id: str) -> Job:
        return self.store.cancel(job_id)

    def retry(self, job_id: str) -> Job:
        job = self.store.retry(job_id)
        self.notify(job_id)
        return job


def _write_durably(path: Path, data: bytes) -> None:
    with path.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def _fsync_dir(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class EmbeddedWorker:
    """The in-process worker: an asyncio task polling the job table; each file takes one of the app's ingest slots
    (shared with synchronous uploads), so background jobs never add CPU contention beyond RAG_INGEST_CONCURRENCY."""

    def __init__(self, runner: JobRunner, slots: asyncio.Semaphore) -> None:
        self.runner = runner
        self.slots = slots
        self.stopping = threading.Event()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="rag-job-worker")

    def wake(self, _job_id: str = "") -> None:
        """Look for work now (callable from any thread)."""
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def stop(self) -> None:
        """Stop at the next component boundary; an interrupted file is re-queued and resumed at the next start."""
        self.stopping.set()
        self.wake()
        if self._task is not None:
            await self._task

    @contextlib.contextmanager
    def _slot(self) -> Iterator[None]:
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(self.slots.acquire(), self._loop).result()
        try:
            yield
        finally:
            self._loop.call_soon_threadsafe(self.slots.release)

    async def _run(self) -> None:
        assert self._wake is not None
        while not self.stopping.is_set():
            self._wake.clear()
            ran = False
            for job_id in await asyncio.to_thread(self.runner.store.claimable):
                if self.stopping.is_set():
                    break
                try:
                    ran = (
                        await asyncio.to_thread(self.runner.run, job_id, slot=self._slot, stopping=self.stopping) or ran
                    )
                except Exception:  # the worker's outermost boundary: one broken job must not stop the others
                    logger.exception("Job {job_id} failed unexpectedly", job_id=job_id)
                    await asyncio.to_thread(
                        self.runner.store.set_state,
                        job_id,
                        "failed",
                        error="internal error while running the job (see the service log)",
                    )
            if not ran:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=_POLL_SECONDS)


# -- Redis mode (rq) -------------------------------------------------------------------------------------------

_rq_runner: JobRunner | None = None


class RedisQueue:
    """Enqueues job ids on an rq queue; `rag worker` processes run them."""

    def __init__(self, url: str) -> None:
        from redis import Redis
        from rq import Queue

        self.queue = Queue(RQ_QUEUE_NAME, connection=Redis.from_url(url))

    def enqueue(self, job_id: str) -> None:
        self.queue.enqueue_call(
            run_queued_job,
            args=(job_id,),
            timeout=-1,
            result_ttl=3600,
            failure_ttl=7 * 86400,
            description=f"ingest job {job_id}",
        )

    def requeue_orphans(self, store: JobStore) -> int:
        """Enqueue every unfinished job nobody runs (at start and periodically: a dead worker's job is resumed)."""
        orphans = store.requeue_orphans()
        for job_id in orphans:
            self.enqueue(job_id)
        return len(orphans)


def requeue_unowned(store: JobStore, queue: RedisQueue) -> int:
    """At API start: enqueue every unfinished job no live worker holds (one recorded just before a crash was
    perhaps never enqueued; a job enqueued twice runs once: the second run finds it finished or claimed)."""
    store.requeue_orphans()
    claimable = store.claimable()
    for job_id in claimable:
        queue.enqueue(job_id)
    return len(claimable)


def run_queued_job(job_id: str) -> bool:
    """The rq task: run one job with this process's runner (pipelines loaded once per worker process)."""
    global _rq_runner
    if _rq_runner is None:
        from app.composition import job_runner, load_pipeline_set
        from app.settings import Settings

        settings = Settings()
        pipelines = load_pipeline_set(settings)
        pipelines.warm_up()
        _rq_runner = job_runner(settings, pipelines)
    return _rq_runner.run(job_id)


def run_rq_worker(settings: Any, pipelines: Any, *, burst: bool = False) -> None:
    """`rag worker`: warm the pipelines once, resume orphaned jobs, then run queued jobs in this process."""
    from redis import Redis
    from rq import SimpleWorker

    from app.composition import job_runner

    global _rq_runner
    pipelines.warm_up()
    _rq_runner = job_runner(settings, pipelines)
    queue = RedisQueue(settings.redis_url)
    resumed = queue.requeue_orphans(_rq_runner.store)
    logger.info("Job worker ready on {queue} ({resumed} orphaned jobs re-queued)", queue=RQ_QUEUE_NAME, resumed=resumed)
    worker = SimpleWorker([queue.queue], connection=Redis.from_url(settings.redis_url))
    worker.work(burst=burst, with_scheduler=False)
