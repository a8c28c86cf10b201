"""`kill -9` of a `rag worker` in the middle of a file: another worker finishes it, and the document holds exactly the
chunk count of a clean run (job table in PostgreSQL, one rq task per file on a real Redis)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from app.composition import job_service, load_pipeline_set
from app.jobs import JobService, UploadedFile
from app.jobs.workers import RedisQueue
from app.services.collections import collection_filter
from app.settings import Settings
from app.testing.servers import descendants, rag_worker

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.postgres]


def _wait(predicate, seconds: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not (found := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return found


def _submit(jobs: JobService, collection: str, pdf: Path) -> str:
    upload = UploadedFile(filename=pdf.name, content_type="application/pdf", data=pdf.read_bytes())
    return jobs.submit(collection, {}, [upload]).id


def test_kill_9_of_a_worker_mid_file_is_finished_by_the_other_with_the_clean_chunk_count(
    tmp_path, make_tiny_profile, pg_schema_url, redis_server, r_intro_pdf
):
    pipelines = make_tiny_profile(tmp_path / "pipelines")
    data_dir = tmp_path / "data"
    env = {
        "RAG_JOB_QUEUE": "redis",
        "RAG_REDIS_URL": redis_server,
        "RAG_STATE_URL": pg_schema_url,
        "RAG_JOB_LEASE_SECONDS": "6",
    }
    settings = Settings(
        data_dir=data_dir,
        pipelines_dir=pipelines,
        job_queue="redis",
        redis_url=redis_server,
        state_url=pg_schema_url,
        job_lease_seconds=6,
    )
    jobs = job_service(settings)
    queue = RedisQueue(redis_server, store=jobs.store)
    jobs.notify = queue.notify
    with (
        rag_worker(pipelines, data_dir, env=env, log_name="worker-a.log") as first,
        rag_worker(pipelines, data_dir, env=env, log_name="worker-b.log") as second,
    ):
        clean_id = _submit(jobs, "clean", r_intro_pdf)
        clean = _wait(lambda: (job := jobs.get(clean_id)).state in ("done", "failed") and job, 600, "the clean run")
        assert clean.state == "done", clean
        clean_chunks = clean.files[0].chunks

        job_id = _submit(jobs, "k9", r_intro_pdf)
        running = _wait(
            lambda: (file := jobs.get(job_id).files[0]).stage in ("embedding", "writing") and file, 600, "embedding"
        )
        owner_pid = int((running.owner or "").split(":")[1])
        victim, survivor = (first, second) if owner_pid == first.pid else (second, first)
        assert victim.pid == owner_pid
        indexer = descendants(victim.pid)  # its indexing process: gone within a second of its parent
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(timeout=10) == -signal.SIGKILL
        _wait(lambda: not any(os.path.exists(f"/proc/{pid}") for pid in indexer), 30, "the indexing process to exit")
        # the API's watchdog does this every RAG_JOB_LEASE_SECONDS: the dead worker's file is enqueued again
        _wait(lambda: queue.requeue_orphans() == 1, 30, "the orphaned file")
        done = _wait(lambda: (job := jobs.get(job_id)).state in ("done", "failed") and job, 600, "the resumed job")
        assert survivor.poll() is None
    file = done.files[0]
    assert done.state == "done" and file.status == "indexed", done
    assert file.attempts == 2 and file.chunks == clean_chunks
    store = load_pipeline_set(settings).document_store
    assert store.count_documents_by_filter(collection_filter("k9")) == clean_chunks  # whole: not partial, not doubled
    worker_logs = "".join((data_dir / name).read_text() for name in ("worker-a.log", "worker-b.log"))
    assert f"Running job {job_id}" in worker_logs


def test_sigterm_stops_a_worker_mid_file_within_its_lease_and_gives_the_file_back(
    tmp_path, make_tiny_profile, pg_schema_url, redis_server, r_intro_pdf
):
    pipelines = make_tiny_profile(tmp_path / "pipelines")
    data_dir = tmp_path / "data"
    env = {"RAG_JOB_QUEUE": "redis", "RAG_REDIS_URL": redis_server, "RAG_STATE_URL": pg_schema_url}
    settings = Settings(
        data_dir=data_dir, pipelines_dir=pipelines, job_queue="redis", redis_url=redis_server, state_url=pg_schema_url
    )
    jobs = job_service(settings)
    queue = RedisQueue(redis_server, store=jobs.store)
    jobs.notify = queue.notify
    with rag_worker(pipelines, data_dir, env=env) as worker:
        job_id = _submit(jobs, "stopped", r_intro_pdf)
        _wait(lambda: jobs.get(job_id).files[0].stage in ("embedding", "writing"), 600, "embedding")
        worker.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        # given back at the next component boundary (the rest of one component's run), within the lease
        _wait(lambda: jobs.get(job_id).files[0].state == "queued", settings.job_lease_seconds, "the file given back")
        took = time.monotonic() - stopped
        assert worker.wait(timeout=120) == 0  # then it exits (after its indexing process)
    file = jobs.get(job_id).files[0]
    assert (file.state, file.owner, file.stage, file.chunks_done) == ("queued", None, None, 0), file
    assert [task.args for task in queue.queue.jobs] == [(job_id, 0)]  # enqueued again for the next worker
    assert "the file in progress is given back" in (data_dir / "worker.log").read_text()
    print(f"\nSIGTERM mid-file: the file was given back {took:.1f} s later")
