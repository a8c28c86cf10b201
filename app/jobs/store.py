"""The durable job table: jobs, their files, and the leases of the workers running them, in SQLite (`jobs.db`, one
host) or PostgreSQL (RAG_STATE_URL, any number of hosts).

One unit of work is one file: a worker claims a file row (one `UPDATE ... RETURNING`; PostgreSQL picks the row with
`FOR UPDATE SKIP LOCKED`), which takes its lease and moves its `fence` on. Every later write of that worker to the
file (progress, stage, result, release) is conditioned on its owner and fence, so a worker that lost its lease
(renewal refused: it ran out and somebody else claimed the file) changes nothing. The files of one job may run on
different workers at once; the job's state is aggregated from its files' rows, and whoever ends the last file
finishes the job in the same transaction.

Every time written or compared is the database's (`StateDatabase.now`): this host's clock in SQLite, the server's in
PostgreSQL, so a worker host with a skewed clock cannot take a live lease early. The schema is versioned:
`MIGRATIONS` (SQLite, append-only: `MIGRATIONS[0]` is the first release's, so its `jobs.db` opens unchanged) and
`POSTGRES_MIGRATIONS` (PostgreSQL, its own steps). States are never written as SQL literals: they are bound as
parameters from `JobState` / `FileState`.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
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
from app.postgres import PostgresDatabase
from app.services.access import ACCESS_TAG, acl_id
from app.sqlite import SQLiteDatabase
from app.state import StateDatabase

# Documents are versions of sources (SQLite step 6, PostgreSQL step 3): a file's source id, the version it made and
# its chunk counts against the previous version.
_VERSIONS = """
    ALTER TABLE job_files ADD COLUMN source_id TEXT;
    ALTER TABLE job_files ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE job_files ADD COLUMN chunks_unchanged INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE job_files ADD COLUMN chunks_added INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE job_files ADD COLUMN chunks_removed INTEGER NOT NULL DEFAULT 0;
    """

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
    # 4: one unit of work per file: each file is claimed and leased on its own (`fence` counts its claims) and
    # records its stage; the job's state is aggregated from its files
    """
    ALTER TABLE job_files ADD COLUMN owner TEXT;
    ALTER TABLE job_files ADD COLUMN lease_until REAL NOT NULL DEFAULT 0;
    ALTER TABLE job_files ADD COLUMN fence INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE job_files ADD COLUMN stage TEXT;
    CREATE INDEX IF NOT EXISTS job_files_by_state ON job_files (state, lease_until);
    """,
    # 5: a file's own tags (JSON, merged over the job's: a vector store's file id and attributes) and splitter size
    # (JSON [length, overlap] in characters: a vector store's static chunking)
    """
    ALTER TABLE job_files ADD COLUMN tags TEXT;
    ALTER TABLE job_files ADD COLUMN split TEXT;
    """,
    # 6: the id of the access list of the job's documents (`app.services.access`; NULL: public): who sees the job
    """
    ALTER TABLE jobs ADD COLUMN acl TEXT;
    """,
    # 7: documents are versions of sources
    _VERSIONS,
)

# PostgreSQL: its own steps, starting from the current schema (times in DOUBLE PRECISION).
POSTGRES_MIGRATIONS = (
    """
    CREATE TABLE IF NOT EXISTS jobs (
        id TEXT PRIMARY KEY,
        collection TEXT NOT NULL,
        tags TEXT NOT NULL,
        state TEXT NOT NULL,
        error TEXT,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        owner TEXT,
        lease_until DOUBLE PRECISION NOT NULL DEFAULT 0,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL,
        finished_at DOUBLE PRECISION,
        generation INTEGER NOT NULL DEFAULT 0,
        uploads_removed_at DOUBLE PRECISION
    );
    CREATE INDEX IF NOT EXISTS jobs_by_created ON jobs (created_at);
    CREATE INDEX IF NOT EXISTS jobs_by_collection ON jobs (collection, created_at);
    CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state);
    CREATE INDEX IF NOT EXISTS jobs_by_finished ON jobs (finished_at);
    CREATE TABLE IF NOT EXISTS job_files (
        job_id TEXT NOT NULL REFERENCES jobs (id),
        idx INTEGER NOT NULL,
        filename TEXT NOT NULL,
        content_type TEXT,
        size BIGINT NOT NULL,
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
        duration_ms DOUBLE PRECISION NOT NULL DEFAULT 0,
        owner TEXT,
        lease_until DOUBLE PRECISION NOT NULL DEFAULT 0,
        fence INTEGER NOT NULL DEFAULT 0,
        stage TEXT,
        PRIMARY KEY (job_id, idx)
    );
    CREATE INDEX IF NOT EXISTS job_files_by_state ON job_files (state, lease_until);
    """,
    """
    ALTER TABLE job_files ADD COLUMN IF NOT EXISTS tags TEXT;
    ALTER TABLE job_files ADD COLUMN IF NOT EXISTS split TEXT;
    """,
    """
    ALTER TABLE jobs ADD COLUMN IF NOT EXISTS acl TEXT;
    """,
    _VERSIONS,
)


def _placeholders(values: tuple[Any, ...]) -> str:
    return ", ".join("?" * len(values))


_TERMINAL = _placeholders(TERMINAL_STATES)  # "?, ?, ?" for `state [NOT] IN (...)` with TERMINAL_STATES bound
_UNFINISHED_FILES = _placeholders(UNFINISHED_FILE_STATES)
_STAGES = (JobState.PARSING, JobState.EMBEDDING, JobState.WRITING)  # a running file's stages, in their order
# A file nobody holds: never claimed, released, or its lease ran out (compared with the database's time).
_FREE = "(f.owner IS NULL OR f.lease_until < ?)"


def new_owner_id() -> str:
    """`host:pid:random`: identifies a worker; a dead process on this host is detected from its pid."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _owner_is_dead(owner: str | None) -> bool:
    """True when `owner` is a process of this host that no longer exists (a worker killed with SIGKILL). An owner on
    another host is never judged here: only its lease, on the database's clock, says it is gone."""
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


class LeaseLostError(RuntimeError):
    """A worker's write to a file it no longer holds (its lease ran out and the file was claimed again): ignored."""


@dataclass(frozen=True)
class FileLease:
    """A worker's hold on one file of a job: every write it makes to the file is conditioned on `owner` and `fence`."""

    job_id: str
    index: int
    owner: str
    fence: int


@dataclass
class SweptJobs:
    """What one retention pass changed in the table: the jobs whose uploads were released, the jobs deleted."""

    uploads_removed: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


_FENCED = "job_id = ? AND idx = ? AND owner = ? AND fence = ?"


def _fenced(lease: FileLease) -> tuple[Any, ...]:
    return (lease.job_id, lease.index, lease.owner, lease.fence)


class JobStore:
    """The job table on a `StateDatabase` (SQLite WAL or PostgreSQL); one short connection per operation, any thread,
    any process, any host (PostgreSQL)."""

    def __init__(self, database: StateDatabase | Path, *, clock: Callable[[], float] = time.time) -> None:
        """`database`: the tables' database (`app.state.state_database`), or the path of a SQLite file. `clock`: the
        time of a SQLite file's timestamps and leases (seconds since the epoch); PostgreSQL uses the server's."""
        if isinstance(database, Path):
            database = SQLiteDatabase(database, migrations=MIGRATIONS, clock=clock)
        self.db: StateDatabase = database
        self.path = database.path if isinstance(database, SQLiteDatabase) else None
        self._clock = clock

    @property
    def clock(self) -> Callable[[], float]:
        """The clock of a SQLite file's times (settable: tests move time on); PostgreSQL's times are the server's."""
        return self.db.clock if isinstance(self.db, SQLiteDatabase) else self._clock

    @clock.setter
    def clock(self, clock: Callable[[], float]) -> None:
        if isinstance(self.db, SQLiteDatabase):
            self.db.clock = clock
        self._clock = clock

    @property
    def postgres(self) -> bool:
        return isinstance(self.db, PostgresDatabase)

    def now(self) -> float:
        """The database's time (the retention's reference)."""
        with self.db.connect() as db:
            return self._now(db)

    def _now(self, db: Any) -> float:
        """The time of the database `db` is a connection to (SQLite: this host's clock; PostgreSQL: the server's)."""
        return self.db.now(db)

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
        excluding: frozenset[str] | None = None,
        state: JobState | None = None,
        offset: int = 0,
        limit: int = 50,
        acls: list[str] | None = None,
    ) -> tuple[list[Job], int]:
        """Newest first, optionally of one collection (or only those `within`, none of those `excluding`) or in one
        state; and the total. `acls`: only the jobs whose documents' access list is one of these ids (or public), in
        the query itself."""
        where: list[str] = []
        params: list[Any] = []
        if acls is not None:
            where.append(f"(acl IS NULL OR acl IN ({', '.join('?' * len(acls))}))" if acls else "acl IS NULL")
            params.extend(acls)
        if collection is not None:
            where.append("collection = ?")
            params.append(collection)
        if within is not None:
            where.append(f"collection IN ({', '.join('?' * len(within))})" if within else "FALSE")
            params.extend(sorted(within))
        if excluding:
            where.append(f"collection NOT IN ({', '.join('?' * len(excluding))})")
            params.extend(sorted(excluding))
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

    def claimable_files(self, job_id: str | None = None) -> list[tuple[str, int]]:
        """The files a worker may claim (of one job, or of all, oldest job first): unfinished files of unfinished
        jobs that nobody holds (never claimed, released, their lease ran out, or their process of this host is gone)."""
        with self.db.connect() as db:
            now = self._now(db)
            only = " AND f.job_id = ?" if job_id is not None else ""
            rows = db.execute(
                "SELECT f.job_id, f.idx, f.owner, f.lease_until FROM job_files f JOIN jobs j ON j.id = f.job_id "
                f"WHERE f.state IN ({_UNFINISHED_FILES}) AND j.state NOT IN ({_TERMINAL}){only} "
                "ORDER BY j.created_at, f.job_id, f.idx",
                (*UNFINISHED_FILE_STATES, *TERMINAL_STATES, *((job_id,) if job_id is not None else ())),
            ).fetchall()
        return [
            (r["job_id"], r["idx"])
            for r in rows
            if not r["owner"] or r["lease_until"] < now or _owner_is_dead(r["owner"])
        ]

    def claimable(self) -> list[str]:
        """The unfinished jobs with a file nobody runs, oldest first."""
        return list(dict.fromkeys(job_id for job_id, _ in self.claimable_files()))

    def cancel_requested(self, job_id: str) -> bool:
        with self.db.connect() as db:
            row = db.execute("SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return bool(row and row[0])

    def check(self, lease: FileLease) -> tuple[bool, bool]:
        """(the lease is still held, the job's cancellation was asked for): one read, before each pipeline step."""
        with self.db.connect() as db:
            now = self._now(db)
            row = db.execute(
                "SELECT f.owner, f.fence, f.lease_until, j.cancel_requested FROM job_files f JOIN jobs j "
                "ON j.id = f.job_id WHERE f.job_id = ? AND f.idx = ?",
                (lease.job_id, lease.index),
            ).fetchone()
        if row is None:
            return False, True
        held = row["owner"] == lease.owner and row["fence"] == lease.fence and row["lease_until"] >= now
        return held, bool(row["cancel_requested"])

    # -- writing

    def create(
        self, job_id: str, collection: str, tags: dict[str, Any], files: list[dict[str, Any]], *, generation: int = 0
    ) -> Job:
        """Record a queued job and its files (already spooled; a file that was not is recorded failed); `generation`:
        the collection's generation at submission (`CollectionService.generation`)."""
        with self.db.transaction() as db:
            now = self._now(db)
            acl = acl_id(tags.get(ACCESS_TAG))
            db.execute(
                "INSERT INTO jobs (id, collection, tags, state, created_at, updated_at, generation, acl) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (job_id, collection, json.dumps(tags), JobState.QUEUED, now, now, generation, acl),
            )
            for index, spec in enumerate(files):
                db.execute(
                    "INSERT INTO job_files (job_id, idx, filename, content_type, size, document_id, spooled, state, "
                    "status, pages_total, error, error_code, tags, split, source_id) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                        json.dumps(spec["tags"]) if spec.get("tags") else None,
                        json.dumps(list(spec["split"])) if spec.get("split") else None,
                        spec.get("source_id"),
                    ),
                )
            if files and not any(spec["spooled"] for spec in files):  # nothing to run: finished at once
                _aggregate(db, job_id, now)
        return self.get(job_id)

    def claim(
        self, job_id: str | None, owner: str, lease_seconds: float, *, index: int | None = None
    ) -> FileLease | None:
        """Take the next file nobody holds for `owner` (of job `job_id`, or of any job when None, oldest first; only
        file `index` when given): one `UPDATE ... RETURNING` that moves the file's fence on, counts an attempt and
        resets its progress. None: nothing to take (finished, or held by a live worker)."""
        where = [f"f.state IN ({_UNFINISHED_FILES})", f"j.state NOT IN ({_TERMINAL})"]
        params: list[Any] = [*UNFINISHED_FILE_STATES, *TERMINAL_STATES]
        if job_id is not None:
            where.append("f.job_id = ?")
            params.append(job_id)
        if index is not None:
            where.append("f.idx = ?")
            params.append(index)
        # PostgreSQL: concurrent claimers skip each other's candidate rows instead of waiting for them
        lock = " FOR UPDATE OF f SKIP LOCKED" if self.postgres else ""
        with self.db.transaction() as db:
            now = self._now(db)
            row = db.execute(
                "UPDATE job_files SET owner = ?, lease_until = ?, fence = fence + 1, attempts = attempts + 1, "
                "state = ?, stage = NULL, pages_done = 0, chunks_total = 0, chunks_done = 0 "
                "WHERE (job_id, idx) IN (SELECT f.job_id, f.idx FROM job_files f JOIN jobs j ON j.id = f.job_id "
                f"WHERE {' AND '.join(where)} AND {_FREE} ORDER BY j.created_at, f.job_id, f.idx LIMIT 1{lock}) "
                "AND (owner IS NULL OR lease_until < ?) RETURNING job_id, idx, fence",
                (owner, now + lease_seconds, FileState.RUNNING, *params, now, now),
            ).fetchone()
            if row is None:  # perhaps a file held by a process of this host that died (kill -9): taken at once
                row = self._claim_from_dead(db, where, params, owner, now + lease_seconds)
            if row is None:
                return None
            db.execute("UPDATE jobs SET updated_at = ? WHERE id = ?", (now, row["job_id"]))
        return FileLease(row["job_id"], int(row["idx"]), owner, int(row["fence"]))

    def _claim_from_dead(
        self, db: Any, where: list[str], params: list[Any], owner: str, lease_until: float
    ) -> Any | None:
        rows = db.execute(
            "SELECT f.job_id, f.idx, f.owner, f.fence FROM job_files f JOIN jobs j ON j.id = f.job_id "
            f"WHERE {' AND '.join(where)} AND f.owner LIKE ? ORDER BY j.created_at, f.job_id, f.idx",
            (*params, f"{socket.gethostname()}:%"),
        ).fetchall()
        for candidate in rows:
            if not _owner_is_dead(candidate["owner"]):
                continue
            row = db.execute(
                "UPDATE job_files SET owner = ?, lease_until = ?, fence = fence + 1, attempts = attempts + 1, "
                "state = ?, stage = NULL, pages_done = 0, chunks_total = 0, chunks_done = 0 "
                "WHERE job_id = ? AND idx = ? AND owner = ? AND fence = ? RETURNING job_id, idx, fence",
                (
                    owner,
                    lease_until,
                    FileState.RUNNING,
                    candidate["job_id"],
                    candidate["idx"],
                    candidate["owner"],
                    candidate["fence"],
                ),
            ).fetchone()
            if row is not None:
                return row
        return None

    def renew(self, lease: FileLease, lease_seconds: float) -> bool:
        """Extend the lease, only while `lease` still holds the file (its owner, its fence, not yet run out). False:
        the lease is lost; the worker must stop before writing anything more."""
        with self.db.connect() as db:
            now = self._now(db)
            renewed = db.execute(
                f"UPDATE job_files SET lease_until = ? WHERE {_FENCED} AND lease_until >= ? AND state = ?",
                (now + lease_seconds, *_fenced(lease), now, FileState.RUNNING),
            ).rowcount
        return renewed == 1

    def release(self, lease: FileLease) -> bool:
        """Give the file back unfinished (the worker is stopping): queued again with its progress reset, for the next
        worker (it deletes what this one may have written first). False: the lease was lost already."""
        with self.db.transaction() as db:
            now = self._now(db)
            released = db.execute(
                "UPDATE job_files SET owner = NULL, lease_until = 0, state = ?, stage = NULL, pages_done = 0, "
                f"chunks_total = 0, chunks_done = 0 WHERE {_FENCED} AND state IN ({_UNFINISHED_FILES})",
                (FileState.QUEUED, *_fenced(lease), *UNFINISHED_FILE_STATES),
            ).rowcount
            if released:
                _aggregate(db, lease.job_id, now)
        return released == 1

    def progress(self, lease: FileLease, **values: Any) -> bool:
        """Record a held file's progress (`pages_total`, `pages_done`, `chunks_total`, `chunks_done`, `stage`); the
        job's state follows the stage. False (nothing written): the lease was lost."""
        if values.get("stage") is not None:
            values["stage"] = JobState(values["stage"])
        columns = ", ".join(f"{name} = ?" for name in values)
        with self.db.transaction() as db:
            now = self._now(db)
            written = db.execute(
                f"UPDATE job_files SET {columns} WHERE {_FENCED}", (*values.values(), *_fenced(lease))
            ).rowcount
            if written:
                if "stage" in values:
                    _aggregate(db, lease.job_id, now)
                else:
                    db.execute("UPDATE jobs SET updated_at = ? WHERE id = ?", (now, lease.job_id))
        return written == 1

    def finish_file(self, lease: FileLease, **values: Any) -> JobState | None:
        """Record a held file's end (`state` done, failed or skipped, its result) and give up its lease; when it was
        the job's last unfinished file the job is finished in the same transaction: its final state is returned (the
        caller then runs what follows a job's end). Raises `LeaseLostError` (nothing written) when the lease was lost.
        """
        values["state"] = FileState(values["state"])
        if values.get("status") is not None:
            values["status"] = FileStatus(values["status"])
        columns = ", ".join(f"{name} = ?" for name in values)
        with self.db.transaction() as db:
            now = self._now(db)
            written = db.execute(
                f"UPDATE job_files SET {columns}, owner = NULL, lease_until = 0, stage = NULL WHERE {_FENCED}",
                (*values.values(), *_fenced(lease)),
            ).rowcount
            if not written:
                raise LeaseLostError(f"job {lease.job_id} file {lease.index}: the lease of {lease.owner} was lost")
            return _aggregate(db, lease.job_id, now)

    def requeue_orphans(self) -> list[tuple[str, int]]:
        """Files held by a worker that died (lease run out, or its process of this host gone), made unowned again
        (for a queue that must be told about them): their job id and index."""
        orphans: list[tuple[str, int]] = []
        with self.db.transaction() as db:
            now = self._now(db)
            rows = db.execute(
                "SELECT f.job_id, f.idx, f.owner, f.fence, f.lease_until FROM job_files f JOIN jobs j "
                f"ON j.id = f.job_id WHERE f.state IN ({_UNFINISHED_FILES}) AND j.state NOT IN ({_TERMINAL}) "
                "AND f.owner IS NOT NULL ORDER BY j.created_at, f.job_id, f.idx",
                (*UNFINISHED_FILE_STATES, *TERMINAL_STATES),
            ).fetchall()
            for row in rows:
                if row["lease_until"] >= now and not _owner_is_dead(row["owner"]):
                    continue
                requeued = db.execute(
                    "UPDATE job_files SET owner = NULL, lease_until = 0, state = ?, stage = NULL "
                    "WHERE job_id = ? AND idx = ? AND owner = ? AND fence = ?",
                    (FileState.QUEUED, row["job_id"], row["idx"], row["owner"], row["fence"]),
                ).rowcount
                if requeued:
                    orphans.append((row["job_id"], int(row["idx"])))
            for job_id in dict.fromkeys(job_id for job_id, _ in orphans):
                _aggregate(db, job_id, now)
        return orphans

    def settle(self) -> list[tuple[str, JobState]]:
        """Finish the unfinished jobs none of whose files is left to run (a worker of an earlier release that died
        between a job's last file and the job's end; here both happen in one transaction): their ids and end states."""
        settled: list[tuple[str, JobState]] = []
        with self.db.transaction() as db:
            now = self._now(db)
            rows = db.execute(
                f"SELECT id FROM jobs j WHERE state NOT IN ({_TERMINAL}) AND NOT EXISTS (SELECT 1 FROM job_files f "
                f"WHERE f.job_id = j.id AND f.state IN ({_UNFINISHED_FILES})) ORDER BY created_at, id",
                (*TERMINAL_STATES, *UNFINISHED_FILE_STATES),
            ).fetchall()
            for row in rows:
                state = _aggregate(db, row["id"], now)
                if state is not None:
                    settled.append((row["id"], state))
        return settled

    def set_state(self, job_id: str, state: JobState, *, error: str | None = None) -> None:
        """Set the job's state directly (tests, and records of an earlier release); the workers' runs aggregate it
        from the files instead."""
        state = JobState(state)
        with self.db.connect() as db:
            now = self._now(db)
            db.execute(
                "UPDATE jobs SET state = ?, error = ?, updated_at = ?, finished_at = ? WHERE id = ?",
                (state, error, now, now if state.finished else None, job_id),
            )

    def update_file(self, job_id: str, index: int, **values: Any) -> None:
        """Set columns of one file directly, whoever holds it (`state` a `FileState`, `status` a `FileStatus`); a
        worker writes through its lease (`progress`, `finish_file`) instead."""
        if "state" in values:
            values["state"] = FileState(values["state"])
        if values.get("status") is not None:
            values["status"] = FileStatus(values["status"])
        columns = ", ".join(f"{name} = ?" for name in values)
        with self.db.connect() as db:
            db.execute(
                f"UPDATE job_files SET {columns} WHERE job_id = ? AND idx = ?", (*values.values(), job_id, index)
            )
            db.execute("UPDATE jobs SET updated_at = ? WHERE id = ?", (self._now(db), job_id))

    def cancel(self, job_id: str) -> Job:
        """Ask for cancellation: the files nobody runs are skipped at once (and the job cancelled when no file is left
        running), a running file stops at its next step."""
        with self.db.transaction() as db:
            row = db.execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"job {job_id!r} does not exist")
            if row["state"] in TERMINAL_STATES:
                raise ConflictError(f"job {job_id!r} is already {row['state']}")
            _cancel(db, job_id, self._now(db))
        return self.get(job_id)

    def request_cancel(self, job_id: str) -> None:
        """Mark a running job cancelled at its next step (its runner found its collection dropped)."""
        with self.db.connect() as db:
            db.execute("UPDATE jobs SET cancel_requested = 1, updated_at = ? WHERE id = ?", (self._now(db), job_id))

    def cancel_collection(self, collection: str) -> list[str]:
        """Cancel every unfinished job of a collection being dropped (one transaction): their files nobody runs at
        once, the running ones at their next step. The ids of the jobs concerned."""
        with self.db.transaction() as db:
            now = self._now(db)
            rows = db.execute(
                f"SELECT id FROM jobs WHERE collection = ? AND state NOT IN ({_TERMINAL}) ORDER BY created_at, id",
                (collection, *TERMINAL_STATES),
            ).fetchall()
            for row in rows:
                _cancel(db, row["id"], now)
        return [row["id"] for row in rows]

    def retry(self, job_id: str, *, generation: int | None = None) -> Job:
        """Queue the failed (and cancelled) files of a finished job again; 409 when there are none. `generation`: the
        collection's current one (a retry is a new request: it writes into the collection as it is now)."""
        with self.db.transaction() as db:
            now = self._now(db)
            row = db.execute(
                "SELECT state, finished_at, updated_at, uploads_removed_at FROM jobs WHERE id = ?", (job_id,)
            ).fetchone()
            if row is None:
                raise NotFoundError(f"job {job_id!r} does not exist")
            if row["state"] not in TERMINAL_STATES:
                raise ConflictError(f"job {job_id!r} is still {row['state']}: retry it once it has finished")
            retried = db.execute(
                "UPDATE job_files SET state = ?, status = NULL, error = NULL, error_code = NULL, pages = 0, "
                "chunks = 0, pages_done = 0, chunks_total = 0, chunks_done = 0, duration_ms = 0, owner = NULL, "
                "lease_until = 0, stage = NULL WHERE job_id = ? AND state IN (?, ?) AND spooled = 1",
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
                    f"SELECT id FROM jobs WHERE {finished} AND uploads_removed_at IS NULL ORDER BY id",
                    (*TERMINAL_STATES, uploads_before),
                ).fetchall()
                swept.uploads_removed = [row["id"] for row in rows]
                now = self._now(db)
                for job_id in swept.uploads_removed:
                    db.execute("UPDATE job_files SET spooled = 0 WHERE job_id = ?", (job_id,))
                    db.execute("UPDATE jobs SET uploads_removed_at = ? WHERE id = ?", (now, job_id))
            if rows_before is not None:
                rows = db.execute(
                    f"SELECT id FROM jobs WHERE {finished} ORDER BY id", (*TERMINAL_STATES, rows_before)
                ).fetchall()
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


def _cancel(db: Any, job_id: str, now: float) -> None:
    """Inside a transaction: skip the job's files nobody holds, ask its running files to stop, and finish the job
    when nothing of it runs any more."""
    db.execute(
        "UPDATE job_files SET state = ?, owner = NULL, lease_until = 0, stage = NULL "
        f"WHERE job_id = ? AND state IN ({_UNFINISHED_FILES}) AND (owner IS NULL OR lease_until < ?)",
        (FileState.SKIPPED, job_id, *UNFINISHED_FILE_STATES, now),
    )
    held = db.execute(
        f"SELECT idx, owner, fence FROM job_files WHERE job_id = ? AND state IN ({_UNFINISHED_FILES})",
        (job_id, *UNFINISHED_FILE_STATES),
    ).fetchall()
    for row in held:  # held by a process of this host that is gone
        if _owner_is_dead(row["owner"]):
            db.execute(
                "UPDATE job_files SET state = ?, owner = NULL, lease_until = 0, stage = NULL "
                "WHERE job_id = ? AND idx = ? AND fence = ?",
                (FileState.SKIPPED, job_id, row["idx"], row["fence"]),
            )
    db.execute("UPDATE jobs SET cancel_requested = 1, updated_at = ? WHERE id = ?", (now, job_id))
    _aggregate(db, job_id, now)


def _aggregate(db: Any, job_id: str, now: float) -> JobState | None:
    """Inside a transaction (after the file rows it changed: files are locked before their job): the job's state
    from its files. While a file is unfinished: the most advanced stage of its running files, else queued. Once none
    is: cancelled (asked for), failed (no file indexed) or done, with `finished_at`; that final state is returned
    (None while the job is unfinished, or when it had finished already)."""
    row = db.execute(
        "UPDATE jobs SET updated_at = ? WHERE id = ? RETURNING state, cancel_requested", (now, job_id)
    ).fetchone()  # locks the job's row: whoever ends its last file sees every other file's end
    if row is None or row["state"] in TERMINAL_STATES:
        return None
    files = db.execute("SELECT state, stage, error_code FROM job_files WHERE job_id = ?", (job_id,)).fetchall()
    unfinished = [f for f in files if f["state"] in UNFINISHED_FILE_STATES]
    if unfinished:
        stages = {f["stage"] for f in unfinished if f["state"] == FileState.RUNNING and f["stage"]}
        state = max((JobState(s) for s in stages), key=_STAGES.index, default=JobState.QUEUED)
        db.execute("UPDATE jobs SET state = ? WHERE id = ?", (state, job_id))
        return None
    error = None
    if row["cancel_requested"]:
        state = JobState.CANCELLED
    elif files and all(f["state"] == FileState.FAILED for f in files):
        state = JobState.FAILED
        error = (
            "the spooled files are gone (the job was interrupted and its uploads are no longer on disk)"
            if {f["error_code"] for f in files} == {"spool_missing"}
            else "no file could be indexed"
        )
    else:
        state = JobState.DONE
    db.execute(
        "UPDATE jobs SET state = ?, error = ?, finished_at = ?, owner = NULL, lease_until = 0 WHERE id = ?",
        (state, error, now, job_id),
    )
    return state


def _has_unindexed_files(db: Any, job_id: str) -> bool:
    row = db.execute(
        "SELECT 1 FROM job_files WHERE job_id = ? AND state IN (?, ?) AND document_id != '' LIMIT 1",
        (job_id, FileState.FAILED, FileState.SKIPPED),
    ).fetchone()
    return row is not None


def _uploads_removed_reason(job_id: str, row: Any) -> str:
    finished = row["finished_at"] if row["finished_at"] is not None else row["updated_at"]
    days = max(0, round((row["uploads_removed_at"] - finished) / 86_400))
    return (
        f"the uploads of job {job_id!r} were removed {days} days after it finished (RAG_JOB_RETENTION_DAYS); "
        "upload the files again"
    )


def _job(row: Any, files: Sequence[Any]) -> Job:
    held = [f for f in files if f["owner"]]
    return Job(
        id=row["id"],
        collection=row["collection"],
        tags=json.loads(row["tags"]),
        state=JobState(row["state"]),
        error=row["error"],
        cancel_requested=bool(row["cancel_requested"]),
        owner=held[0]["owner"] if held else None,  # a worker holding one of its files
        lease_until=max((f["lease_until"] for f in held), default=0.0),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        finished_at=row["finished_at"],
        generation=row["generation"],
        acl=row["acl"],
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
                owner=f["owner"],
                lease_until=f["lease_until"],
                fence=f["fence"],
                stage=JobState(f["stage"]) if f["stage"] else None,
                tags=json.loads(f["tags"]) if f["tags"] else {},
                split=tuple(json.loads(f["split"])) if f["split"] else None,
                source_id=f["source_id"],
                version=f["version"],
                chunks_unchanged=f["chunks_unchanged"],
                chunks_added=f["chunks_added"],
                chunks_removed=f["chunks_removed"],
            )
            for f in files
        ],
    )
