"""Submitting jobs (spooled, recorded, durable), listing and the errors for unknown jobs."""

from __future__ import annotations

import pytest

from app.errors import NotFoundError
from app.jobs import JobStore, UploadedFile


def test_a_submitted_job_is_spooled_and_recorded(service, submit, tmp_path):
    job_id = submit("a.txt", "b.txt")
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
