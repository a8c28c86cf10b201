"""The job table, leases and the runner's resume rules, with a recording stand-in for the ingest service."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from app.errors import ConflictError, NotFoundError, UpstreamUnavailableError
from app.services.ingest import IngestResult
from app.services.jobs import JobRunner, JobService, JobStore, UploadedFile, stage_of


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
        return IngestResult(
            document_id="d", filename=filename, content_type="text/plain", status="indexed", pages=1, chunks=2
        )


@pytest.fixture
def service(tmp_path: Path) -> JobService:
    return JobService(JobStore(tmp_path / "jobs.db"), tmp_path / "jobs")


def _submit(service: JobService, *names: str, collection: str = "c") -> str:
    files = [UploadedFile(filename=name, content_type="text/plain", data=f"text of {name}".encode()) for name in names]
    return service.submit(collection, {"team": "qa"}, files).id


def _runner(service: JobService, ingest: RecordingIngest, lease: float = 30.0) -> JobRunner:
    return JobRunner(service.store, ingest, service.jobs_dir, lease_seconds=lease)  # type: ignore[arg-type]


def test_a_submitted_job_is_spooled_and_recorded(service, tmp_path):
    job_id = _submit(service, "a.txt", "b.txt")
    reopened = JobStore(tmp_path / "jobs.db").get(job_id)  # another connection: it is on disk
    assert reopened.state == "queued" and reopened.tags == {"team": "qa"}
    assert [f.filename for f in reopened.files] == ["a.txt", "b.txt"]
    assert (service.jobs_dir / job_id / "1").read_bytes() == b"text of b.txt"
    assert reopened.progress == {
        "files_done": 0,
        "files_total": 2,
        "pages_done": 0,
        "pages_total": 2,
        "chunks_done": 0,
        "chunks_total": 0,
    }
    import sqlite3

    with sqlite3.connect(tmp_path / "jobs.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_refused_file_is_recorded_failed_and_never_spooled(service):
    refused = UploadedFile(
        filename="big.pdf", content_type=None, data=None, error="too big", error_code="payload_too_large"
    )
    job = service.submit("c", {}, [refused])
    assert job.files[0].state == "failed" and job.files[0].error_code == "payload_too_large"
    assert not (service.jobs_dir / job.id / "0").exists()


def test_recent_jobs_newest_first_paged_and_by_collection(service):
    ids = [_submit(service, "x.txt", collection="one") for _ in range(3)] + [
        _submit(service, "y.txt", collection="two")
    ]
    jobs, total = service.recent(collection="one", offset=0, limit=2)
    assert total == 3 and [j.id for j in jobs] == ids[2:0:-1]
    assert service.recent(collection="two")[0][0].id == ids[3]
    assert service.recent(state="done") == ([], 0)


def test_unknown_job_is_not_found(service):
    for call in (service.get, service.cancel, service.retry):
        with pytest.raises(NotFoundError):
            call("nope")


def test_lease_keeps_others_out_until_it_expires(service):
    job_id = _submit(service, "a.txt")
    store = service.store
    assert store.claim(job_id, "host-a:1:x", lease_seconds=0.3)
    assert not store.claim(job_id, "host-b:2:y", lease_seconds=10)
    assert job_id not in store.claimable()
    time.sleep(0.35)
    assert job_id in store.claimable()
    assert store.claim(job_id, "host-b:2:y", lease_seconds=10)


def test_a_job_held_by_a_dead_process_of_this_host_is_claimable_at_once(service):
    import socket
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    job_id = _submit(service, "a.txt")
    assert service.store.claim(job_id, f"{socket.gethostname()}:{dead.stdout.strip()}:x", lease_seconds=3600)
    assert service.store.claimable() == [job_id]


def test_runner_indexes_every_file_and_cleans_the_spool(service):
    job_id = _submit(service, "a.txt", "b.txt")
    ingest = RecordingIngest()
    assert _runner(service, ingest).run(job_id)
    job = service.get(job_id)
    assert job.state == "done" and job.owner is None and job.finished_at
    assert [(f.state, f.status, f.chunks) for f in job.files] == [("done", "indexed", 2)] * 2
    assert job.progress["files_done"] == 2 and job.progress["chunks_done"] == 4
    assert ingest.calls == [("ingest", "a.txt"), ("ingest", "b.txt")]  # first attempts: nothing to clean
    assert not (service.jobs_dir / job_id).exists()
    assert not _runner(service, ingest).run(job_id)  # a finished job is not run again


def test_a_file_interrupted_by_a_crash_is_cleaned_then_indexed_again(service):
    job_id = _submit(service, "a.txt", "b.txt")
    first = service.get(job_id).files[0]
    # what a killed worker leaves behind: file 0 was being indexed, the job in a running stage, a stale owner
    service.store.update_file(job_id, 0, state="running", attempts=1)
    service.store.set_state(job_id, "embedding")
    assert service.store.claim(job_id, "gone:1:x", lease_seconds=0.01)
    time.sleep(0.02)
    ingest = RecordingIngest()
    assert _runner(service, ingest).run(job_id)
    assert ingest.calls == [("discard", first.document_id), ("ingest", "a.txt"), ("ingest", "b.txt")]
    assert service.get(job_id).state == "done"


def test_a_job_whose_spool_vanished_fails_with_the_reason(service):
    import shutil

    job_id = _submit(service, "a.txt")
    shutil.rmtree(service.jobs_dir / job_id)
    assert _runner(service, RecordingIngest()).run(job_id)
    job = service.get(job_id)
    assert job.state == "failed" and "spooled files are gone" in (job.error or "")
    assert job.files[0].error_code == "spool_missing"


def test_an_upstream_failure_fails_the_file_and_retry_indexes_it(service):
    job_id = _submit(service, "a.txt", "b.txt")
    ingest = RecordingIngest()
    ingest.fail["b.txt"] = UpstreamUnavailableError("document store unreachable")
    _runner(service, ingest).run(job_id)
    job = service.get(job_id)
    assert job.state == "done"  # one file indexed: done, with the other's error
    assert (job.files[1].state, job.files[1].error_code) == ("failed", "upstream_unavailable")
    with pytest.raises(ConflictError):
        service.cancel(job_id)
    retried = service.retry(job_id)
    assert retried.state == "queued" and [f.state for f in retried.files] == ["done", "queued"]
    ingest.calls.clear()
    _runner(service, ingest).run(job_id)
    # the retried file had run before: whatever it may have written is removed before it is indexed again
    assert ingest.calls == [("discard", job.files[1].document_id), ("ingest", "b.txt")]
    assert service.get(job_id).files[1].status == "indexed"
    with pytest.raises(ConflictError, match="no failed files"):
        service.retry(job_id)


def test_cancel_of_a_job_nobody_runs_is_immediate(service):
    job_id = _submit(service, "a.txt")
    job = service.cancel(job_id)
    assert job.state == "cancelled" and [f.state for f in job.files] == ["skipped"]
    assert not _runner(service, RecordingIngest()).run(job_id)
    assert service.retry(job_id).files[0].state == "queued"


def test_cancel_of_a_running_job_skips_the_files_left(service):
    job_id = _submit(service, "a.txt", "b.txt")
    ingest = RecordingIngest()
    runner = _runner(service, ingest)
    original = ingest.ingest_bytes

    def cancel_during_first(data: bytes, filename: str, **kwargs: object) -> IngestResult:
        service.cancel(job_id)  # held by the runner: only requested
        return original(data, filename, **kwargs)

    ingest.ingest_bytes = cancel_during_first  # type: ignore[method-assign]
    runner.run(job_id)
    job = service.get(job_id)
    assert job.state == "cancelled" and [f.state for f in job.files] == ["done", "skipped"]


@pytest.mark.parametrize(
    ("name", "type_name", "stage"),
    [
        ("router", "FileTypeRouter", "parsing"),
        ("pdf_converter", "PdfToDocument", "parsing"),
        ("splitter", "RecursiveDocumentSplitter", "parsing"),
        ("embedder", "OnnxDocumentEmbedder", "embedding"),
        ("embedder", "RetryingOllamaDocumentEmbedder", "embedding"),
        ("writer", "DocumentWriter", "writing"),
    ],
)
def test_stage_of_a_component(name, type_name, stage):
    assert stage_of(name, type_name) == stage
