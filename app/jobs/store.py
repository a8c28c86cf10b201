"""The durable job table (`jobs.db`): jobs, their files, and the leases of the workers running them.

The schema is versioned (`app.sqlite`): `MIGRATIONS[0]` is the schema of the first release with jobs, so a
`jobs.db` written by it opens unchanged; a later change to the tables is a new step appended to `MIGRATIONS`.
States are never written as SQL literals: they are bound as parameters from `JobState` / `FileState`.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.errors import ConflictError, NotFoundError, UploadsRemovedError
from app.jobs.models import (
    TERMINAL_STATES,
    UNFINISHED_FILE_STATES,
    FileState,
    FileStatus,
    Job,
    JobFile,
    JobState,
)
from app.sqlite import SQLiteDatabase

# Append-only: a released step is never edited (files of that release have already run it).
MIGRATIONS = (
    # 1: the first release's schema (created with IF NOT EXISTS: an unversioned file of that release is at this step)
    """
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
    """,
    # 2: the generation of the job's collection when the job was submitted (a drop since then cancels the job)
    """
    ALTER TABLE jobs ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
    """,
    # 3: when the retention sweep removed the job's spooled uploads (a retry then answers 410)
    """
    ALTER TABLE jobs ADD COLUMN uploads_removed_at REAL;
    CREATE INDEX IF NOT EXISTS jobs_by_finished ON jobs (finished_at);
    """,
)


def _placeholders(values: tuple[Any, ...]) -> str:
    return ", ".join("?" * len(values))


_TERMINAL = _placeholders(TERMINAL_STATES)  # "?, ?, ?" for `state [NOT] IN (...)` with TERMINAL_STATES bound
_UNFINISHED_FILES = _placeholders(UNFINISHED_FILE_STATES)


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


def _lease_is_free(owner: str | None, lease_until: float, now: float) -> bool:
    """Nobody holds the job: never taken, its lease ran out, or its process is gone."""
    return not owner or lease_until < now or _owner_is_dead(owner)


@dataclass
class SweptJobs:
    """What one retention pass changed in the table: the jobs whose uploads were released, the jobs deleted."""

    uploads_removed: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


class JobStore:
    """The job table in SQLite (WAL); one short connection per operation, any thread, any process."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        """`clock`: the time every timestamp and lease is taken from (seconds since the epoch)."""
        self.path = path
        self.clock = clock
        self.db = SQLiteDatabase(path, migrations=MIGRATIONS)

    # -- reading

    def get(self, job_id: str) -> Job:
        """The job with its files; 404 when unknown."""
        with self.db.connect() as db:
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
        state: JobState | None = None,
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
            params.append(JobState(state))
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        with self.db.connect() as db:
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
        now = self.clock()
        with self.db.connect() as db:
            rows = db.execute(
                f"SELECT id, owner, lease_until FROM jobs WHERE state NOT IN ({_TERMINAL}) ORDER BY created_at",
                TERMINAL_STATES,
            ).fetchall()
        return [r["id"] for r in rows if _lease_is_free(r["owner"], r["lease_until"], now)]

    def cancel_requested(self, job_id: str) -> bool:
        with self.db.connect() as db:
            row = db.execute("SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return bool(row and row[0])

    # -- writing

    def create(
        self, job_id: str, collection: str, tags: dict[str, Any], files: list[dict[str, Any]], *, generation: int = 0
    ) -> Job:
        """Record a queued job and its files (already spooled; a file that was not is recorded failed); `generation`:
        the collection's generation at submission (`CollectionService.generation`)."""
        now = self.clock()
        with self.db.transaction() as db:
            db.execute(
                "INSERT INTO jobs (id, collection, tags, state, created_at, updated_at, generation) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (job_id, collection, json.dumps(tags), JobState.QUEUED, now, now, generation),
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
                        FileState.QUEUED if spec["spooled"] else FileState.FAILED,
                        None if spec["spooled"] else FileStatus.FAILED,
                        spec["pages_total"],
                        spec.get("error"),
                        spec.get("error_code"),
                    ),
                )
        return self.get(job_id)

    def claim(self, job_id: str, owner: str, lease_seconds: float) -> bool:
        """Take the job for `owner` unless another live worker holds it or it is finished."""
        now = self.clock()
        with self.db.transaction() as db:
            row = db.execute("SELECT state, owner, lease_until FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None or row["state"] in TERMINAL_STATES:
                return False
            if row["owner"] != owner and not _lease_is_free(row["owner"], row["lease_until"], now):
                return False
            db.execute(
                "UPDATE jobs SET owner = ?, lease_until = ?, updated_at = ? WHERE id = ?",
                (owner, now + lease_seconds, now, job_id),
            )
        return True

    def renew(self, job_id: str, owner: str, lease_seconds: float) -> None:
        with self.db.connect() as db:
            db.execute(
                "UPDATE jobs SET lease_until = ? WHERE id = ? AND owner = ?",
                (self.clock() + lease_seconds, job_id, owner),
            )

    def release(self, job_id: str, owner: str) -> None:
        with self.db.connect() as db:
            db.execute("UPDATE jobs SET owner = NULL, lease_until = 0 WHERE id = ? AND owner = ?", (job_id, owner))

    def requeue_orphans(self) -> list[str]:
        """Jobs started by a worker that died, made unowned again (for a queue that must be told about them)."""
        now = self.clock()
        orphans = []
        with self.db.transaction() as db:
            rows = db.execute(
                f"SELECT id, owner, lease_until FROM jobs WHERE state NOT IN ({_TERMINAL}) AND owner IS NOT NULL",
                TERMINAL_STATES,
            ).fetchall()
            for row in rows:
                if _lease_is_free(row["owner"], row["lease_until"], now):
                    db.execute("UPDATE jobs SET owner = NULL, lease_until = 0 WHERE id = ?", (row["id"],))
                    orphans.append(row["id"])
        return orphans

    def set_state(self, job_id: str, state: JobState, *, error: str | None = None) -> None:
        state = JobState(state)
        now = self.clock()
        with self.db.connect() as db:
            db.execute(
                "UPDATE jobs SET state = ?, error = ?, updated_at = ?, finished_at = ? WHERE id = ?",
                (state, error, now, now if state.finished else None, job_id),
            )

    def update_file(self, job_id: str, index: int, **values: Any) -> None:
        """Set columns of one file (`state` a `FileState`, `status` a `FileStatus`)."""
        if "state" in values:
            values["state"] = FileState(values["state"])
        if values.get("status") is not None:
            values["status"] = FileStatus(values["status"])
        columns = ", ".join(f"{name} = ?" for name in values)
        with self.db.connect() as db:
            db.execute(
                f"UPDATE job_files SET {columns} WHERE job_id = ? AND idx = ?", (*values.values(), job_id, index)
            )
            db.execute("UPDATE jobs SET updated_at = ? WHERE id = ?", (self.clock(), job_id))

    def skip_unfinished(self, job_id: str) -> None:
        with self.db.connect() as db:
            _skip_unfinished(db, job_id)

    def cancel(self, job_id: str) -> Job:
        """Ask for cancellation: a job nobody runs is cancelled at once, a running one at its next step."""
        now = self.clock()
        with self.db.transaction() as db:
            row = db.execute("SELECT state, owner, lease_until FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"job {job_id!r} does not exist")
            if row["state"] in TERMINAL_STATES:
                raise ConflictError(f"job {job_id!r} is already {row['state']}")
            db.execute("UPDATE jobs SET cancel_requested = 1, updated_at = ? WHERE id = ?", (now, job_id))
            if _lease_is_free(row["owner"], row["lease_until"], now):
                _skip_unfinished(db, job_id)
                db.execute(
                    "UPDATE jobs SET state = ?, finished_at = ?, owner = NULL WHERE id = ?",
                    (JobState.CANCELLED, now, job_id),
                )
        return self.get(job_id)

    def request_cancel(self, job_id: str) -> None:
        """Mark a running job cancelled at its next step (its runner found its collection dropped)."""
        with self.db.connect() as db:
            db.execute("UPDATE jobs SET cancel_requested = 1, updated_at = ? WHERE id = ?", (self.clock(), job_id))

    def cancel_collection(self, collection: str) -> list[str]:
        """Cancel every unfinished job of a collection being dropped (one transaction): the ones nobody runs at once,
        the running ones at their next step. The ids of the jobs concerned."""
        now = self.clock()
        with self.db.transaction() as db:
            rows = db.execute(
                f"SELECT id, owner, lease_until FROM jobs WHERE collection = ? AND state NOT IN ({_TERMINAL})",
                (collection, *TERMINAL_STATES),
            ).fetchall()
            for row in rows:
                db.execute("UPDATE jobs SET cancel_requested = 1, updated_at = ? WHERE id = ?", (now, row["id"]))
                if _lease_is_free(row["owner"], row["lease_until"], now):
                    _skip_unfinished(db, row["id"])
                    db.execute(
                        "UPDATE jobs SET state = ?, finished_at = ?, owner = NULL WHERE id = ?",
                        (JobState.CANCELLED, now, row["id"]),
                    )
        return [row["id"] for row in rows]

    def retry(self, job_id: str, *, generation: int | None = None) -> Job:
        """Queue the failed (and cancelled) files of a finished job again; 409 when there are none. `generation`: the
        collection's current one (a retry is a new request: it writes into the collection as it is now)."""
        now = self.clock()
        with self.db.transaction() as db:
            row = db.execute(
                "SELECT state, finished_at, updated_at, uploads_removed_at FROM jobs WHERE id = ?", (job_id,)
            ).fetchone()
            if row is None:
                raise NotFoundError(f"job {job_id!r} does not exist")
            if row["state"] not in TERMINAL_STATES:
                raise ConflictError(f"job {job_id!r} is still {row['state']}: retry it once it has finished")
            retried = db.execute(
                "UPDATE job_files SET state = ?, status = NULL, error = NULL, error_code = NULL, pages = 0, "
                "chunks = 0, pages_done = 0, chunks_total = 0, chunks_done = 0, duration_ms = 0 "
                "WHERE job_id = ? AND state IN (?, ?) AND spooled = 1",
                (FileState.QUEUED, job_id, FileState.FAILED, FileState.SKIPPED),
            ).rowcount
            if not retried and row["uploads_removed_at"] is not None and _has_unindexed_files(db, job_id):
                raise UploadsRemovedError(_uploads_removed_reason(job_id, row), detail={"job_id": job_id})
            if not retried:
                raise ConflictError(f"job {job_id!r} has no failed files that can be retried")
            db.execute(
                "UPDATE jobs SET state = ?, error = NULL, cancel_requested = 0, finished_at = NULL, "
                "owner = NULL, lease_until = 0, updated_at = ?, generation = COALESCE(?, generation) WHERE id = ?",
                (JobState.QUEUED, now, generation, job_id),
            )
        return self.get(job_id)

    # -- retention

    def sweep(self, *, uploads_before: float | None, rows_before: float | None) -> SweptJobs:
        """Apply the retention to finished jobs (one transaction), by the time they finished.

        Jobs finished before `uploads_before` have their uploads released: every file is marked no longer spooled and
        the job records when (`uploads_removed_at`), so a retry answers 410; the caller deletes the folders after this
        returns (a retry that commits first has made the job unfinished again, and it is left alone). Jobs finished
        before `rows_before` are deleted with their files. None: that part is kept forever. Unfinished jobs (queued,
        running, being cancelled) are never touched.
        """
        swept = SweptJobs()
        finished = f"state IN ({_TERMINAL}) AND COALESCE(finished_at, updated_at) < ?"
        with self.db.transaction() as db:
            if uploads_before is not None:
                rows = db.execute(
                    f"SELECT id FROM jobs WHERE {finished} AND uploads_removed_at IS NULL",
                    (*TERMINAL_STATES, uploads_before),
                ).fetchall()
                swept.uploads_removed = [row["id"] for row in rows]
                now = self.clock()
                for job_id in swept.uploads_removed:
                    db.execute("UPDATE job_files SET spooled = 0 WHERE job_id = ?", (job_id,))
                    db.execute("UPDATE jobs SET uploads_removed_at = ? WHERE id = ?", (now, job_id))
            if rows_before is not None:
                rows = db.execute(f"SELECT id FROM jobs WHERE {finished}", (*TERMINAL_STATES, rows_before)).fetchall()
                swept.deleted = [row["id"] for row in rows]
                for job_id in swept.deleted:
                    db.execute("DELETE FROM job_files WHERE job_id = ?", (job_id,))
                    db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
        return swept

    def spool_owners(self, job_ids: list[str]) -> dict[str, bool]:
        """Of these ids, the ones that are jobs, each with True when its uploads may still be needed (not released)."""
        owners: dict[str, bool] = {}
        with self.db.connect() as db:
            for job_id in job_ids:
                row = db.execute("SELECT uploads_removed_at FROM jobs WHERE id = ?", (job_id,)).fetchone()
                if row is not None:
                    owners[job_id] = row["uploads_removed_at"] is None
        return owners

    def has_unfinished(self, collection: str) -> bool:
        """True when a job of the collection is queued or running (the collection may exist only through it)."""
        with self.db.connect() as db:
            row = db.execute(
                f"SELECT 1 FROM jobs WHERE collection = ? AND state NOT IN ({_TERMINAL}) LIMIT 1",
                (collection, *TERMINAL_STATES),
            ).fetchone()
        return row is not None


def _has_unindexed_files(db: sqlite3.Connection, job_id: str) -> bool:
    row = db.execute(
        "SELECT 1 FROM job_files WHERE job_id = ? AND state IN (?, ?) AND document_id != '' LIMIT 1",
        (job_id, FileState.FAILED, FileState.SKIPPED),
    ).fetchone()
    return row is not None


def _uploads_removed_reason(job_id: str, row: sqlite3.Row) -> str:
    finished = row["finished_at"] if row["finished_at"] is not None else row["updated_at"]
    days = max(0, round((row["uploads_removed_at"] - finished) / 86_400))
    return (
        f"the uploads of job {job_id!r} were removed {days} days after it finished (RAG_JOB_RETENTION_DAYS); "
        "upload the files again"
    )


def _skip_unfinished(db: sqlite3.Connection, job_id: str) -> None:
    db.execute(
        f"UPDATE job_files SET state = ? WHERE job_id = ? AND state IN ({_UNFINISHED_FILES})",
        (FileState.SKIPPED, job_id, *UNFINISHED_FILE_STATES),
    )


def _job(row: sqlite3.Row, files: list[sqlite3.Row]) -> Job:
    return Job(
        id=row["id"],
        collection=row["collection"],
        tags=json.loads(row["tags"]),
        state=JobState(row["state"]),
        error=row["error"],
        cancel_requested=bool(row["cancel_requested"]),
        owner=row["owner"],
        lease_until=row["lease_until"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        finished_at=row["finished_at"],
        generation=row["generation"],
        files=[
            JobFile(
                index=f["idx"],
                filename=f["filename"],
                content_type=f["content_type"],
                size=f["size"],
                document_id=f["document_id"],
                spooled=bool(f["spooled"]),
                state=FileState(f["state"]),
                status=FileStatus(f["status"]) if f["status"] is not None else None,
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
