"""The runner's resume rules: crash recovery, vanished spools, upstream failures, retry and cancel."""

from __future__ import annotations

import time

import pytest

from app.errors import ConflictError, UpstreamUnavailableError
from app.jobs.runner import stage_of
from app.services.ingest import IngestResult


def test_runner_indexes_every_file_and_cleans_the_spool(service, submit, runner_for, ingest):
    job_id = submit("a.txt", "b.txt")
    assert runner_for(ingest).run(job_id)
    job = service.get(job_id)
    assert job.state == "done" and job.owner is None and job.finished_at
    assert [(f.state, f.status, f.chunks) for f in job.files] == [("done", "indexed", 2)] * 2
    assert job.progress["files_done"] == 2 and job.progress["chunks_done"] == 4
    assert ingest.calls == [("ingest", "a.txt"), ("ingest", "b.txt")]  # first attempts: nothing to clean
    assert not (service.jobs_dir / job_id).exists()
    assert not runner_for(ingest).run(job_id)  # a finished job is not run again


def test_a_file_interrupted_by_a_crash_is_cleaned_then_indexed_again(service, submit, runner_for, ingest):
    job_id = submit("a.txt", "b.txt")
    first = service.get(job_id).files[0]
    # what a killed worker leaves behind: file 0 was being indexed, the job in a running stage, a stale owner
    service.store.update_file(job_id, 0, state="running", attempts=1)
    service.store.set_state(job_id, "embedding")
    assert service.store.claim(job_id, "gone:1:x", lease_seconds=0.01)
    time.sleep(0.02)
    assert runner_for(ingest).run(job_id)
    assert ingest.calls == [("discard", first.document_id), ("ingest", "a.txt"), ("ingest", "b.txt")]
    assert service.get(job_id).state == "done"


def test_a_job_whose_spool_vanished_fails_with_the_reason(service, submit, runner_for, ingest):
    import shutil

    job_id = submit("a.txt")
    shutil.rmtree(service.jobs_dir / job_id)
    assert runner_for(ingest).run(job_id)
    job = service.get(job_id)
    assert job.state == "failed" and "spooled files are gone" in (job.error or "")
    assert job.files[0].error_code == "spool_missing"


def test_an_upstream_failure_fails_the_file_and_retry_indexes_it(service, submit, runner_for, ingest):
    job_id = submit("a.txt", "b.txt")
    ingest.fail["b.txt"] = UpstreamUnavailableError("document store unreachable")
    runner_for(ingest).run(job_id)
    job = service.get(job_id)
    assert job.state == "done"  # one file indexed: done, with the other's error
    assert (job.files[1].state, job.files[1].error_code) == ("failed", "upstream_unavailable")
    with pytest.raises(ConflictError):
        service.cancel(job_id)
    retried = service.retry(job_id)
    assert retried.state == "queued" and [f.state for f in retried.files] == ["done", "queued"]
    ingest.calls.clear()
    runner_for(ingest).run(job_id)
    # the retried file had run before: whatever it may have written is removed before it is indexed again
    assert ingest.calls == [("discard", job.files[1].document_id), ("ingest", "b.txt")]
    assert service.get(job_id).files[1].status == "indexed"
    with pytest.raises(ConflictError, match="no failed files"):
        service.retry(job_id)


def test_cancel_of_a_job_nobody_runs_is_immediate(service, submit, runner_for, ingest):
    job_id = submit("a.txt")
    job = service.cancel(job_id)
    assert job.state == "cancelled" and [f.state for f in job.files] == ["skipped"]
    assert not runner_for(ingest).run(job_id)
    assert service.retry(job_id).files[0].state == "queued"


def test_cancel_of_a_running_job_skips_the_files_left(service, submit, runner_for, ingest):
    job_id = submit("a.txt", "b.txt")
    runner = runner_for(ingest)
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
