"""Submitting jobs (spooled, recorded, durable), listing, the errors for unknown jobs, and the retention sweep."""

from __future__ import annotations

import os
import time
import uuid

import pytest

from app.errors import NotFoundError, UploadsRemovedError
from app.jobs import FileState, JobService, JobState, JobStore, UploadedFile


def test_a_submitted_job_is_spooled_and_recorded(tmp_path):
    service = JobService(JobStore(tmp_path / "jobs.db"), tmp_path / "jobs")
    files = [
        UploadedFile(filename=n, content_type="text/plain", data=f"text of {n}".encode()) for n in ("a.txt", "b.txt")
    ]
    job_id = service.submit("c", {"team": "qa"}, files).id
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


def test_recent_jobs_newest_first_paged_and_by_collection(service, submit):
    ids = [submit("x.txt", collection="one") for _ in range(3)] + [submit("y.txt", collection="two")]
    jobs, total = service.recent(collection="one", offset=0, limit=2)
    assert total == 3 and [j.id for j in jobs] == ids[2:0:-1]
    assert service.recent(collection="two")[0][0].id == ids[3]
    assert service.recent(state="done") == ([], 0)


def test_unknown_job_is_not_found(service):
    for call in (service.get, service.cancel, service.retry):
        with pytest.raises(NotFoundError):
            call("nope")


def test_submitting_never_opens_a_pdf_and_keeps_the_route_s_count(tmp_path, monkeypatch):
    """The upload route's page count travels with the file; a PDF it did not count is counted by the runner (0 until
    then), so a 202 never waits for a parser worker."""
    from app.jobs import JobService
    from app.services import file_checks

    def no_count(*args, **kwargs):
        raise AssertionError("a PDF was opened while the job was submitted")

    monkeypatch.setattr(file_checks, "count_pdf_pages", no_count)
    service = JobService(JobStore(tmp_path / "jobs.db"), tmp_path / "jobs")
    pdf = b"%PDF-1.7\n..."
    job = service.submit(
        "c",
        {},
        [
            UploadedFile("known.pdf", "application/pdf", pdf, pdf_pages=7),  # counted by the upload route
            UploadedFile("new.pdf", "application/pdf", pdf + b"2"),
            UploadedFile("notes.txt", "text/plain", b"no pages here"),
        ],
    )
    assert [f.pages_total for f in job.files] == [7, 0, 1]
    assert all(f.spooled for f in job.files)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


DAY = 86_400


@pytest.fixture
def clocked(tmp_path):
    """A job service with a settable clock, uploads kept 7 days and jobs 30 days after they finished."""
    clock = Clock(time.time())
    service = JobService(
        JobStore(tmp_path / "jobs.db", clock=clock), tmp_path / "jobs", retention_days=7, history_days=30
    )
    return service, clock


def _failed_job(service: JobService, *names: str) -> str:
    files = [UploadedFile(filename=n, content_type="text/plain", data=f"text of {n}".encode()) for n in names]
    job = service.submit("c", {}, files)
    for index in range(len(names)):
        service.store.update_file(job.id, index, state=FileState.FAILED, status="failed")
    service.store.set_state(job.id, JobState.FAILED, error="no file could be indexed")
    return job.id


def test_sweep_removes_the_uploads_of_jobs_finished_longer_ago_than_the_retention(clocked):
    service, clock = clocked
    old = _failed_job(service, "a.txt", "b.txt")
    clock.now += 6 * DAY
    recent = _failed_job(service, "c.txt")
    running = service.submit("c", {}, [UploadedFile(filename="d.txt", content_type=None, data=b"d")]).id
    clock.now += 1 * DAY + 60

    report = service.sweep()
    assert (report.uploads_removed, report.jobs_deleted, report.folders_removed) == (1, 0, 1)
    assert report.bytes_freed == len(b"text of a.txt") + len(b"text of b.txt")
    assert not (service.jobs_dir / old).exists()
    assert [f.spooled for f in service.get(old).files] == [False, False]
    assert (service.jobs_dir / recent / "0").exists() and (service.jobs_dir / running / "0").exists()
    with pytest.raises(UploadsRemovedError, match="removed 7 days after it finished"):
        service.retry(old)
    assert service.retry(recent).state == JobState.QUEUED  # still within the retention


def test_sweep_deletes_jobs_after_the_history_and_leftover_folders_after_the_retention(clocked):
    service, clock = clocked
    old = _failed_job(service, "a.txt")
    stray = service.jobs_dir / uuid.uuid4().hex  # a submission interrupted before its job was recorded
    stray.mkdir()
    (stray / "0").write_bytes(b"x")
    fresh_stray = service.jobs_dir / uuid.uuid4().hex  # being submitted
    fresh_stray.mkdir()
    os.utime(stray, (clock.now - 8 * DAY, clock.now - 8 * DAY))
    clock.now += 31 * DAY
    os.utime(fresh_stray, (clock.now, clock.now))

    report = service.sweep()
    assert (report.uploads_removed, report.jobs_deleted, report.folders_removed) == (1, 1, 2)
    with pytest.raises(NotFoundError):
        service.get(old)
    assert not (service.jobs_dir / old).exists() and not stray.exists()
    assert fresh_stray.exists()


def test_sweep_never_removes_a_folder_that_is_no_jobs(clocked):
    service, clock = clocked
    other = service.jobs_dir / "ragstack-files"  # the Files API's contents under a bucket root without prefix
    other.mkdir(parents=True)
    (other / "0").write_bytes(b"x")
    os.utime(other, (clock.now - 8 * DAY, clock.now - 8 * DAY))
    clock.now += 31 * DAY
    assert service.sweep().folders_removed == 0
    assert (other / "0").exists()


def test_sweep_with_zero_days_keeps_everything(tmp_path):
    clock = Clock(time.time())
    service = JobService(JobStore(tmp_path / "jobs.db", clock=clock), tmp_path / "jobs")
    job_id = _failed_job(service, "a.txt")
    clock.now += 3650 * DAY
    assert service.sweep().folders_removed == 0
    assert service.retry(job_id).files[0].spooled
