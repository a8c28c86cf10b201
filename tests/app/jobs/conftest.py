"""Fixtures of the job tests: a job service on a temporary data dir and a recording stand-in for the ingest service."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from app.jobs import JobRunner, JobService, JobStore, UploadedFile
from app.jobs.store import MIGRATIONS, POSTGRES_MIGRATIONS
from app.services.ingest import IngestResult
from app.services.naming import document_id_for
from app.state import open_state_database


class RecordingIngest:
    """Records discard and ingest calls; `fail` maps a file name to an exception raised once."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.fail: dict[str, Exception] = {}

    def discard(self, collection: str, document_id: str) -> int:
        self.calls.append(("discard", document_id))
        return 3

    def ingest_bytes(self, data: bytes, filename: str, **kwargs: object) -> IngestResult:
        self.calls.append(("ingest", filename))
        if filename in self.fail:
            raise self.fail.pop(filename)
        document_id = document_id_for(str(kwargs["collection"]), hashlib.sha256(data).hexdigest())
        return IngestResult(
            document_id=document_id, filename=filename, content_type="text/plain", status="indexed", pages=1, chunks=2
        )


def open_job_store(state_url: str | None, tmp_path: Path, clock: Callable[[], float] = time.time) -> JobStore:
    """The job table on SQLite (`state_url` None: `tmp_path/jobs.db`) or in the PostgreSQL schema of `state_url`."""
    database = open_state_database(
        state_url,
        name="jobs",
        sqlite_path=tmp_path / "jobs.db",
        sqlite_migrations=MIGRATIONS,
        postgres_migrations=POSTGRES_MIGRATIONS,
        clock=clock,
    )
    return JobStore(database, clock=clock)


@pytest.fixture
def service(state_url: str | None, tmp_path: Path) -> JobService:
    """A job service on SQLite and on PostgreSQL (each test twice), spooling under `tmp_path/jobs`."""
    return JobService(open_job_store(state_url, tmp_path), tmp_path / "jobs")


@pytest.fixture
def ingest() -> RecordingIngest:
    return RecordingIngest()


@pytest.fixture
def submit(service: JobService) -> Callable[..., str]:
    """Submit text files by name; the job's id."""

    def submit_files(*names: str, collection: str = "c") -> str:
        files = [
            UploadedFile(filename=name, content_type="text/plain", data=f"text of {name}".encode()) for name in names
        ]
        return service.submit(collection, {"team": "qa"}, files).id

    return submit_files


@pytest.fixture
def runner_for(service: JobService) -> Callable[..., JobRunner]:
    """A runner on the service's store and spool with the given ingest stand-in."""

    def runner(ingest: RecordingIngest, lease: float = 30.0) -> JobRunner:
        return JobRunner(service.store, ingest, service.jobs_dir, lease_seconds=lease)  # type: ignore[arg-type]

    return runner
