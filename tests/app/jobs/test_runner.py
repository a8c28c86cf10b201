"""The runner's resume rules: crash recovery, vanished spools, upstream failures, retry and cancel."""

from __future__ import annotations

import time

import pytest

from app.errors import ConflictError, UpstreamUnavailableError
from app.jobs import FileState, JobService, JobState, UploadedFile
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


def test_a_collection_dropped_while_a_file_is_written_has_that_file_removed(service, submit, ingest):
    """Red-team finding 4: the generation moved during the write -> the chunks are discarded, the job ends cancelled,
    the rest of the job is skipped and the collection is not registered again."""
    from app.jobs import JobRunner

    generation = {"c": 0}
    registered: list[tuple[str, int]] = []
    original = ingest.ingest_bytes

    def dropped_during(data: bytes, filename: str, **kwargs: object) -> IngestResult:
        result = original(data, filename, **kwargs)
        generation["c"] += 1  # DELETE /collections/c while this file was being written
        return result

    ingest.ingest_bytes = dropped_during  # type: ignore[method-assign]
    job_id = submit("a.txt", "b.txt")
    runner = JobRunner(
        service.store,
        ingest,  # type: ignore[arg-type]
        service.jobs_dir,
        on_indexed=lambda name, gen: registered.append((name, gen)),
        generation_of=generation.__getitem__,
    )
    assert runner.run(job_id)
    job = service.get(job_id)
    assert job.state == "cancelled" and job.cancel_requested
    assert [f.state for f in job.files] == ["skipped", "skipped"]
    assert ingest.calls == [("ingest", "a.txt"), ("discard", job.files[0].document_id)]
    assert registered == []


def test_a_job_submitted_before_a_drop_never_runs(tmp_path, ingest):
    from app.jobs import JobRunner, JobService, JobStore, UploadedFile

    generation = {"c": 4}
    service = JobService(JobStore(tmp_path / "jobs.db"), tmp_path / "jobs", generation_of=generation.__getitem__)
    job = service.submit("c", {}, [UploadedFile(filename="a.txt", content_type="text/plain", data=b"text")])
    assert job.generation == 4
    generation["c"] = 5  # dropped; here the drop's job cancellation was lost (e.g. a crash between the two)
    runner = JobRunner(service.store, ingest, service.jobs_dir, generation_of=generation.__getitem__)  # type: ignore[arg-type]
    assert runner.run(job.id)
    assert service.get(job.id).state == "cancelled" and ingest.calls == []
    assert service.retry(job.id).generation == 5  # a retry is a new request: it writes into the collection as it is
    assert runner.run(job.id) and service.get(job.id).state == "done"


class TwinWaitingIngest:
    """Waits on a twin that indexes the same document (as `IngestService` does), calling the runner's stop hook before
    each pause; the job is cancelled while it waits."""

    def __init__(self, service: JobService, job_id: str) -> None:
        self.service, self.job_id, self.waits = service, job_id, 0

    def discard(self, collection: str, document_id: str) -> int:
        return 0

    def ingest_bytes(self, data: bytes, filename: str, **kwargs: object) -> IngestResult:
        from app.services.ingest import _twin_wait_hook

        hook = _twin_wait_hook.get()
        assert hook is not None, "the runner installs a stop hook for twin waits"
        self.service.cancel(self.job_id)
        for _ in range(100):  # a twin that never finishes
            self.waits += 1
            hook()
        raise AssertionError("the cancelled job kept waiting for its twin")


def test_a_file_waiting_for_its_twin_stops_when_the_job_is_cancelled(service: JobService, submit, runner_for):
    job_id = submit("a.txt")
    ingest = TwinWaitingIngest(service, job_id)
    runner_for(ingest).run(job_id)
    job = service.get(job_id)
    assert ingest.waits == 1
    assert job.state == JobState.CANCELLED and job.files[0].state == FileState.SKIPPED


class TagRecordingIngest:
    """Records the tags each file is indexed with."""

    def __init__(self) -> None:
        self.tags: dict[str, object] = {}

    def discard(self, collection: str, document_id: str) -> int:
        return 0

    def ingest_bytes(self, data: bytes, filename: str, **kwargs: object) -> IngestResult:
        self.tags[filename] = kwargs.get("tags")
        return IngestResult(document_id="d", filename=filename, content_type="text/plain", status="indexed", chunks=1)


def test_each_file_is_indexed_with_its_own_tags_over_the_jobs(service, runner_for):
    files = [
        UploadedFile(filename="a.txt", content_type="text/plain", data=b"a", tags={"file_id": "file-a", "team": "x"}),
        UploadedFile(filename="b.txt", content_type="text/plain", data=b"b"),
    ]
    job = service.submit("c", {"team": "qa", "lang": "en"}, files)
    assert [f.tags for f in service.get(job.id).files] == [{"file_id": "file-a", "team": "x"}, {}]
    ingest = TagRecordingIngest()
    assert runner_for(ingest).run(job.id)
    assert ingest.tags == {
        "a.txt": {"team": "x", "lang": "en", "file_id": "file-a"},
        "b.txt": {"team": "qa", "lang": "en"},
    }


def test_a_files_splitter_size_reaches_the_ingest_service(service, runner_for):
    files = [
        UploadedFile(filename="a.txt", content_type="text/plain", data=b"a", split=(400, 100)),
        UploadedFile(filename="b.txt", content_type="text/plain", data=b"b"),
    ]
    job = service.submit("c", {}, files)
    seen: dict[str, object] = {}

    class Recording(TagRecordingIngest):
        def ingest_bytes(self, data: bytes, filename: str, **kwargs: object) -> IngestResult:
            seen[filename] = kwargs.get("split")
            return super().ingest_bytes(data, filename, **kwargs)

    assert runner_for(Recording()).run(job.id)
    assert seen == {"a.txt": (400, 100), "b.txt": None}


class VersioningIngest:
    """Answers like an ingest of a new version: `updated` with its chunk counts; records the source_id it got."""

    def __init__(self) -> None:
        self.sources: list[object] = []

    def discard(self, collection: str, document_id: str) -> int:
        return 0

    def ingest_bytes(self, data: bytes, filename: str, **kwargs: object) -> IngestResult:
        self.sources.append(kwargs.get("source_id"))
        status = "unchanged" if filename == "same.txt" else "updated"
        return IngestResult(
            document_id="d",
            filename=filename,
            content_type="text/plain",
            status=status,  # type: ignore[arg-type]
            pages=1,
            chunks=0 if status == "unchanged" else 5,
            source_id=str(kwargs.get("source_id") or filename),
            version=3,
            chunks_unchanged=4 if status == "updated" else 0,
            chunks_added=1 if status == "updated" else 0,
            chunks_removed=2 if status == "updated" else 0,
        )


def test_job_files_record_the_version_and_chunk_counts_of_their_source(service, runner_for):
    files = [
        UploadedFile(filename="log.txt", content_type="text/plain", data=b"new log", source_id="s3://b/log"),
        UploadedFile(filename="same.txt", content_type="text/plain", data=b"same"),
    ]
    job_id = service.submit("c", {}, files).id
    ingest = VersioningIngest()
    assert runner_for(ingest).run(job_id)
    job = service.get(job_id)
    assert ingest.sources == ["s3://b/log", None]
    assert job.state == "done"
    updated, same = job.files
    assert (updated.status, updated.source_id, updated.version) == ("updated", "s3://b/log", 3)
    assert (updated.chunks_unchanged, updated.chunks_added, updated.chunks_removed) == (4, 1, 2)
    assert (same.status, same.version, same.chunks_added) == ("unchanged", 3, 0)
