"""One unit of work per file: claims, leases and fences, on SQLite and PostgreSQL (`state_url`).

A file is claimed with its lease and a fence that every claim moves on; renewing, progress, the file's result and
its release count only while the claimer still holds it, so a worker that lost its lease changes nothing."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app.jobs import FileState, JobRunner, JobService, JobState, JobStore, UploadedFile
from app.jobs.store import POSTGRES_MIGRATIONS, FileLease, LeaseLostError
from app.postgres import PostgresDatabase
from app.services.ingest import IngestResult
from app.services.naming import document_id_for
from app.timing import _watcher


@pytest.fixture
def jobs(service: JobService) -> JobService:
    return service


def _submit(jobs: JobService, *names: str) -> str:
    files = [UploadedFile(filename=n, content_type="text/plain", data=f"text of {n}".encode()) for n in names]
    return jobs.submit("c", {}, files).id


def test_claim_renew_release_and_the_fence(jobs: JobService) -> None:
    store = jobs.store
    job_id = _submit(jobs, "a.txt", "b.txt", "c.txt")
    first = store.claim(job_id, "host-a:1:x", 60)
    second = store.claim(job_id, "host-b:2:y", 60)
    assert first is not None and second is not None
    assert (first.index, first.fence, second.index, second.fence) == (0, 1, 1, 1)  # different files, one claim each
    assert store.renew(first, 60)
    running = store.get(job_id).files[0]
    assert (running.state, running.owner, running.attempts) == (FileState.RUNNING, "host-a:1:x", 1)

    assert store.release(first)  # given back: queued again, nobody holds it
    released = store.get(job_id).files[0]
    assert (released.state, released.owner, released.fence) == (FileState.QUEUED, None, 1)
    assert not store.renew(first, 60) and not store.progress(first, chunks_done=3)
    again = store.claim(job_id, "host-c:3:z", 60)
    assert again is not None and (again.index, again.fence) == (0, 2)
    with pytest.raises(LeaseLostError):
        store.finish_file(first, state=FileState.DONE, chunks=99)
    assert store.get(job_id).files[0].chunks == 0
    assert store.finish_file(again, state=FileState.DONE, status="indexed", chunks=2) is None  # two files still run
    assert store.finish_file(second, state=FileState.FAILED, status="failed") is None
    third = store.claim(job_id, "host-a:1:x", 60)
    assert third is not None and third.index == 2 and store.claim(job_id, "host-a:1:x", 60) is None
    assert store.finish_file(third, state=FileState.DONE, status="indexed", chunks=1) == JobState.DONE  # the last
    job = store.get(job_id)
    assert job.state == JobState.DONE and job.finished_at and job.owner is None


def test_an_expired_lease_cannot_be_renewed_and_its_writes_are_ignored(jobs: JobService) -> None:
    store = jobs.store
    job_id = _submit(jobs, "a.txt")
    old = store.claim(job_id, "host-a:1:x", 0.2)
    assert old is not None and store.claim(job_id, "host-b:2:y", 60) is None  # still held
    time.sleep(0.3)
    assert not store.renew(old, 60)  # ran out: not renewed, even before anybody else took it
    new = store.claim(job_id, "host-b:2:y", 60)
    assert new is not None and new.fence == old.fence + 1
    assert store.get(job_id).files[0].attempts == 2  # the new owner knows the file ran before
    assert not store.progress(old, stage=JobState.WRITING, chunks_done=7)
    assert not store.release(old)
    with pytest.raises(LeaseLostError):
        store.finish_file(old, state=FileState.FAILED, error="late")
    assert store.progress(new, stage=JobState.EMBEDDING, chunks_total=4)
    job = store.get(job_id)
    assert job.state == JobState.EMBEDDING and job.files[0].owner == "host-b:2:y"
    assert (job.files[0].chunks_done, job.files[0].error) == (0, None)


def test_state_is_aggregated_from_the_files(jobs: JobService) -> None:
    store = jobs.store
    job_id = _submit(jobs, "a.txt", "b.txt")
    a, b = store.claim(job_id, "w:1:a", 60), store.claim(job_id, "w:2:b", 60)
    assert a is not None and b is not None
    assert store.get(job_id).state == JobState.QUEUED  # claimed, nothing started yet
    store.progress(a, stage=JobState.PARSING)
    store.progress(b, stage=JobState.WRITING)
    assert store.get(job_id).state == JobState.WRITING  # the most advanced running file
    store.finish_file(b, state=FileState.DONE, status="indexed", chunks=1)
    assert store.get(job_id).state == JobState.PARSING
    cancelled = store.cancel(job_id)  # `a` is held: it stops at its next step, the job is not finished yet
    assert cancelled.state == JobState.PARSING and cancelled.cancel_requested
    assert store.finish_file(a, state=FileState.SKIPPED) == JobState.CANCELLED


@pytest.mark.postgres
def test_a_skewed_worker_clock_does_not_steal_a_live_lease_early(pg_schema_url: str, tmp_path: Path) -> None:
    """PostgreSQL: every lease is measured by the server's clock; a worker host an hour ahead still waits."""
    store = JobStore(PostgresDatabase(pg_schema_url, name="jobs", migrations=POSTGRES_MIGRATIONS))
    jobs = JobService(store, tmp_path / "spool")
    job_id = _submit(jobs, "a.txt")
    held = store.claim(job_id, "host-a:1:x", 60)
    assert held is not None
    skewed = JobStore(
        PostgresDatabase(pg_schema_url, name="jobs", migrations=POSTGRES_MIGRATIONS), clock=lambda: time.time() + 3600
    )
    assert skewed.claimable_files() == [] and skewed.claim(job_id, "host-b:2:y", 60) is None
    assert skewed.requeue_orphans() == []
    assert store.renew(held, 60) and store.get(job_id).files[0].owner == "host-a:1:x"


class ChunkStore:
    """What a document store would hold: chunks per document id, and who wrote them."""

    def __init__(self) -> None:
        self.chunks: dict[str, int] = {}
        self.writes: list[str] = []


class PipelineIngest:
    """An ingest stand-in running three components (splitter, embedder, writer) through the job's component watcher,
    writing `chunks` chunks per document; `after_embedding` runs between the embedder and the writer."""

    def __init__(self, name: str, store: ChunkStore, chunks: int = 4) -> None:
        self.name, self.store, self.chunks = name, store, chunks
        self.after_embedding: Callable[[], None] = lambda: None
        self.files: list[str] = []

    def discard(self, collection: str, document_id: str) -> int:
        return self.store.chunks.pop(document_id, 0)

    def ingest_bytes(self, data: bytes, filename: str, **kwargs: Any) -> IngestResult:
        watcher = _watcher.get()
        assert watcher is not None
        self.files.append(filename)
        documents = [f"{filename} chunk {n}" for n in range(self.chunks)]
        watcher.started("splitter", "RecursiveDocumentSplitter")
        watcher.started("embedder", "OnnxDocumentEmbedder")
        watcher.received("embedder", "OnnxDocumentEmbedder", {"documents": documents})
        self.after_embedding()
        watcher.started("writer", "DocumentWriter")  # a runner that lost its lease stops here
        watcher.received("writer", "DocumentWriter", {"documents": documents})
        document_id = document_id_for(kwargs["collection"], hashlib.sha256(data).hexdigest())  # as the job's
        self.store.chunks[document_id] = self.store.chunks.get(document_id, 0) + len(documents)
        self.store.writes.append(self.name)
        watcher.returned("writer", "DocumentWriter", {"documents_written": len(documents)})
        return IngestResult(
            document_id=document_id,
            filename=filename,
            content_type="text/plain",
            status="indexed",
            pages=1,
            chunks=len(documents),
        )


def _runner(jobs: JobService, ingest: PipelineIngest, lease: float = 30.0) -> JobRunner:
    return JobRunner(jobs.store, ingest, jobs.blobs, lease_seconds=lease)  # type: ignore[arg-type]


def test_a_forced_lease_loss_stops_the_old_runner_before_it_writes(jobs: JobService) -> None:
    chunks = ChunkStore()
    old_ingest, new_ingest = PipelineIngest("old", chunks), PipelineIngest("new", chunks)
    old, new = _runner(jobs, old_ingest), _runner(jobs, new_ingest)
    job_id = _submit(jobs, "a.txt")
    old_lease = []

    def steal() -> None:  # while the old runner embeds: its lease runs out and the new runner takes the file
        held = jobs.store.get(job_id).files[0]
        old_lease.append(held)
        with jobs.store.db.connect() as db:
            db.execute("UPDATE job_files SET lease_until = 0 WHERE job_id = ?", (job_id,))
        assert new.run(job_id)

    old_ingest.after_embedding = steal
    assert old.run(job_id)
    job = jobs.store.get(job_id)
    assert chunks.writes == ["new"]  # the old runner never reached its writer
    assert chunks.chunks == {job.files[0].document_id: 4}
    assert job.state == JobState.DONE
    file = job.files[0]
    assert (file.state, file.status, file.chunks, file.chunks_done, file.attempts) == ("done", "indexed", 4, 4, 2)
    stale = FileLease(job_id, 0, old.owner, old_lease[0].fence)
    assert not jobs.store.progress(stale, chunks_done=99, stage=JobState.WRITING)  # its late updates change nothing
    with pytest.raises(LeaseLostError):
        jobs.store.finish_file(stale, state=FileState.FAILED, error="late")
    assert jobs.store.get(job_id).files[0] == file


def test_a_file_claimed_after_its_worker_died_is_cleaned_before_it_is_indexed_again(jobs: JobService) -> None:
    chunks = ChunkStore()
    job_id = _submit(jobs, "a.txt")
    dead = jobs.store.claim(job_id, "gone-host:1:x", 0.05)  # a worker on another host, killed after writing 2 chunks
    assert dead is not None
    document_id = jobs.store.get(job_id).files[0].document_id
    chunks.chunks[document_id] = 2
    time.sleep(0.1)
    assert _runner(jobs, PipelineIngest("next", chunks)).run(job_id)
    assert chunks.chunks == {document_id: 4} and jobs.store.get(job_id).files[0].chunks == 4


def test_two_runners_on_one_job_take_different_files_at_the_same_time(jobs: JobService) -> None:
    chunks = ChunkStore()
    ingests = [PipelineIngest(name, chunks) for name in ("a", "b")]
    first_files = threading.Barrier(2, timeout=20)  # each runner's first file waits for the other's: both run at once
    for ingest in ingests:
        ingest.after_embedding = lambda ingest=ingest: first_files.wait() if len(ingest.files) == 1 else None
    job_id = _submit(jobs, "one.txt", "two.txt", "three.txt")
    runners = [_runner(jobs, ingest) for ingest in ingests]
    threads = [threading.Thread(target=runner.run, args=(job_id,)) for runner in runners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    job = jobs.store.get(job_id)
    assert job.state == JobState.DONE and [f.chunks for f in job.files] == [4, 4, 4]
    a, b = (set(ingest.files) for ingest in ingests)
    assert a and b and not a & b and a | b == {"one.txt", "two.txt", "three.txt"}
    assert chunks.chunks == {f.document_id: 4 for f in job.files}  # each indexed once


def test_concurrent_claimers_never_take_one_file_twice(jobs: JobService) -> None:
    job_ids = [_submit(jobs, *(f"{batch}-{n}.txt" for n in range(10))) for batch in ("a", "b")]
    claimed: list[tuple[str, int]] = []
    lock = threading.Lock()

    def claimer(owner: str) -> None:
        while (lease := jobs.store.claim(None, owner, 60)) is not None:
            with lock:
                claimed.append((lease.job_id, lease.index))

    threads = [threading.Thread(target=claimer, args=(f"host-{n}:{n}:x",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(claimed) == sorted((job_id, index) for job_id in job_ids for index in range(10))
    assert all(f.fence == 1 for job_id in job_ids for f in jobs.store.get(job_id).files)
