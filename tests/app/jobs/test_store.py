"""The job table: leases, the versioned schema (a previous release's jobs.db opens and keeps its jobs), states."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest

from app.errors import ConflictError, NotFoundError, UploadsRemovedError
from app.jobs import FileState, FileStatus, JobState, JobStore
from app.jobs.store import MIGRATIONS
from app.sqlite import SchemaVersionError

# The schema of jobs.db as the release before versioning created it (no user_version), written out as it was.
PREVIOUS_RELEASE_SCHEMA = """
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


def test_lease_keeps_others_out_until_it_expires(service, submit):
    job_id = submit("a.txt")
    store = service.store
    assert store.claim(job_id, "host-a:1:x", lease_seconds=0.3)
    assert not store.claim(job_id, "host-b:2:y", lease_seconds=10)
    assert job_id not in store.claimable()
    time.sleep(0.35)
    assert job_id in store.claimable()
    assert store.claim(job_id, "host-b:2:y", lease_seconds=10)


def test_a_job_held_by_a_dead_process_of_this_host_is_claimable_at_once(service, submit):
    import socket
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    job_id = submit("a.txt")
    assert service.store.claim(job_id, f"{socket.gethostname()}:{dead.stdout.strip()}:x", lease_seconds=3600)
    assert service.store.claimable() == [job_id]


def _previous_release_db(path) -> None:
    """A jobs.db as the previous release left it: one finished job, one queued job held by a dead worker."""
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(PREVIOUS_RELEASE_SCHEMA)
        db.execute(
            "INSERT INTO jobs (id, collection, tags, state, created_at, updated_at, finished_at) "
            "VALUES ('old-done', 'docs', '{\"team\": \"qa\"}', 'done', 1.0, 2.0, 2.0)"
        )
        db.execute(
            "INSERT INTO job_files (job_id, idx, filename, content_type, size, document_id, spooled, state, status, "
            "pages_total, pages, chunks, pages_done, chunks_done, chunks_total) "
            "VALUES ('old-done', 0, 'a.pdf', 'application/pdf', 10, 'doc-a', 1, 'done', 'indexed', 3, 3, 7, 3, 7, 7)"
        )
        db.execute(
            "INSERT INTO jobs (id, collection, tags, state, owner, lease_until, created_at, updated_at) "
            "VALUES ('old-queued', 'docs', '{}', 'embedding', 'gone:1:x', 5.0, 3.0, 4.0)"
        )
        db.execute(
            "INSERT INTO job_files (job_id, idx, filename, content_type, size, document_id, spooled, state, "
            "pages_total, attempts) VALUES ('old-queued', 0, 'b.txt', 'text/plain', 5, 'doc-b', 1, 'running', 1, 1)"
        )


def test_a_previous_release_jobs_db_is_migrated_and_its_jobs_readable(tmp_path):
    path = tmp_path / "jobs.db"
    _previous_release_db(path)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 0
    store = JobStore(path)
    assert store.db.version == len(MIGRATIONS)
    done = store.get("old-done")
    assert (done.state, done.tags, done.finished_at) == (JobState.DONE, {"team": "qa"}, 2.0)
    assert [(f.filename, f.state, f.status, f.chunks) for f in done.files] == [
        ("a.pdf", FileState.DONE, FileStatus.INDEXED, 7)
    ]
    assert store.claimable() == ["old-queued"]  # its worker's lease ran out long ago: it is resumed
    jobs, total = store.recent(collection="docs")
    assert total == 2 and [j.id for j in jobs] == ["old-queued", "old-done"]
    assert JobStore(path).db.version == len(MIGRATIONS)  # opening again changes nothing


def test_a_job_of_an_earlier_release_left_unfinished_after_its_last_file_is_settled(tmp_path, ingest):
    """Its worker died between the last file's end and the job's end (two steps then, one transaction now): the next
    worker to start finishes it, registering its collection, instead of leaving it `writing` for ever."""
    from app.jobs import JobRunner

    path = tmp_path / "jobs.db"
    _previous_release_db(path)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE jobs SET state = 'writing', finished_at = NULL WHERE id = 'old-done'")
    registered: list[tuple[str, int]] = []
    runner = JobRunner(
        JobStore(path), ingest, tmp_path / "jobs", on_indexed=lambda name, gen: registered.append((name, gen))
    )
    assert runner.settle() == 1
    job = runner.store.get("old-done")
    assert job.state == JobState.DONE and job.finished_at and registered == [("docs", 0)]
    assert runner.store.get("old-queued").state == "embedding"  # a file is left to run: claimed as usual
    assert runner.settle() == 0


def test_a_jobs_db_of_a_newer_release_is_refused(tmp_path):
    path = tmp_path / "jobs.db"
    JobStore(path)
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(SchemaVersionError, match="newer"):
        JobStore(path)


def test_states_are_stored_as_the_enum_values(tmp_path):
    from app.jobs import JobService, UploadedFile

    service = JobService(JobStore(tmp_path / "jobs.db"), tmp_path / "jobs")
    upload = UploadedFile(filename="a.txt", content_type="text/plain", data=b"a")
    job_id = service.submit("c", {"team": "qa"}, [upload]).id
    service.store.set_state(job_id, JobState.EMBEDDING)
    service.store.update_file(job_id, 0, state=FileState.RUNNING)
    with sqlite3.connect(tmp_path / "jobs.db") as db:
        assert db.execute("SELECT state, tags FROM jobs").fetchone() == ("embedding", json.dumps({"team": "qa"}))
        assert db.execute("SELECT state FROM job_files").fetchone() == ("running",)
    with pytest.raises(ValueError):
        service.store.set_state(job_id, "nonsense")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        service.store.update_file(job_id, 0, state="nonsense")
    assert service.get(job_id).state is JobState.EMBEDDING


def test_cancel_collection_cancels_its_unfinished_jobs_only(tmp_path):
    """Dropping a collection: its queued job is cancelled at once, its running one is asked to stop, others are left."""
    store = JobStore(tmp_path / "jobs.db")
    file = {"filename": "a.txt", "content_type": "text/plain", "size": 1, "document_id": "d", "spooled": True}
    queued = store.create("q", "x", {}, [{**file, "pages_total": 1}], generation=3)
    store.create("r", "x", {}, [{**file, "pages_total": 1}])
    store.create("other", "y", {}, [{**file, "pages_total": 1}])
    assert queued.generation == 3
    assert store.claim("r", "live-owner-on-another-host:1:x", 60)
    assert sorted(store.cancel_collection("x")) == ["q", "r"]
    assert store.get("q").state == JobState.CANCELLED and store.get("q").files[0].state == FileState.SKIPPED
    running = store.get("r")
    assert running.cancel_requested and running.state == JobState.QUEUED  # its runner stops at its next step
    assert not store.get("other").cancel_requested
    assert store.cancel_collection("x") == ["r"]  # finished jobs are left alone


class Clock:
    """A settable clock for the store (seconds since the epoch)."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _finished_job(store: JobStore, job_id: str, state: JobState, file_state: FileState = FileState.FAILED) -> None:
    file = {"filename": "a.txt", "content_type": "text/plain", "size": 1, "document_id": "d", "spooled": True}
    store.create(job_id, "x", {}, [{**file, "pages_total": 1}])
    store.update_file(job_id, 0, state=file_state)
    store.set_state(job_id, state)


def _queued_job(store: JobStore, job_id: str, collection: str) -> None:
    file = {"filename": "b.txt", "content_type": None, "size": 1, "document_id": "e", "spooled": True}
    store.create(job_id, collection, {}, [{**file, "pages_total": 1}])


def test_sweep_releases_uploads_then_deletes_finished_jobs_by_when_they_finished(tmp_path):
    clock = Clock()
    store = JobStore(tmp_path / "jobs.db", clock=clock)
    _finished_job(store, "failed", JobState.FAILED)
    _finished_job(store, "cancelled", JobState.CANCELLED, FileState.SKIPPED)
    _finished_job(store, "done", JobState.DONE, FileState.DONE)
    _queued_job(store, "queued", "x")
    clock.now += 10
    _finished_job(store, "recent", JobState.FAILED)
    clock.now += 100

    swept = store.sweep(uploads_before=clock.now - 105, rows_before=None)
    assert sorted(swept.uploads_removed) == ["cancelled", "done", "failed"] and swept.deleted == []
    assert [f.spooled for f in store.get("failed").files] == [False]
    assert store.get("recent").files[0].spooled and store.get("queued").files[0].spooled
    assert store.spool_owners(["failed", "recent", "queued", "nope"]) == {
        "failed": False,
        "recent": True,
        "queued": True,
    }
    assert store.sweep(uploads_before=clock.now - 105, rows_before=None).uploads_removed == []  # once only

    swept = store.sweep(uploads_before=None, rows_before=clock.now - 50)
    assert sorted(swept.deleted) == ["cancelled", "done", "failed", "recent"]
    with pytest.raises(NotFoundError):
        store.get("failed")
    assert store.get("queued").state == JobState.QUEUED  # an unfinished job is never swept, however old
    with sqlite3.connect(tmp_path / "jobs.db") as db:
        assert db.execute("SELECT DISTINCT job_id FROM job_files").fetchall() == [("queued",)]


def test_retry_after_the_uploads_were_removed_is_a_410_with_the_reason(tmp_path):
    clock = Clock()
    store = JobStore(tmp_path / "jobs.db", clock=clock)
    _finished_job(store, "failed", JobState.FAILED)
    _finished_job(store, "done", JobState.DONE, FileState.DONE)
    clock.now += 7 * 86_400 + 600
    store.sweep(uploads_before=clock.now - 7 * 86_400, rows_before=None)
    with pytest.raises(UploadsRemovedError, match="removed 7 days after it finished") as raised:
        store.retry("failed")
    assert raised.value.code == "uploads_removed"
    assert store.get("failed").state == JobState.FAILED
    with pytest.raises(ConflictError, match="no failed files"):  # nothing to retry anyway: the usual 409
        store.retry("done")


def test_a_retry_before_the_sweep_keeps_the_job_out_of_it(tmp_path):
    clock = Clock()
    store = JobStore(tmp_path / "jobs.db", clock=clock)
    _finished_job(store, "failed", JobState.FAILED)
    clock.now += 1000
    assert store.retry("failed").state == JobState.QUEUED
    assert store.sweep(uploads_before=clock.now, rows_before=clock.now).uploads_removed == []
    assert store.get("failed").files[0].spooled


def test_has_unfinished_is_true_only_for_queued_or_running_jobs(tmp_path):
    store = JobStore(tmp_path / "jobs.db")
    _finished_job(store, "failed", JobState.FAILED)
    assert not store.has_unfinished("x")
    _queued_job(store, "q", "y")
    assert store.has_unfinished("y") and not store.has_unfinished("z")
