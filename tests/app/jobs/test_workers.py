"""The workers: the embedded one runs what is submitted and stops cleanly; the queue side re-queues unowned jobs and
runs a queued job with its process's runner."""

from __future__ import annotations

import asyncio
import sys
import time

import pytest

from app.extras import MissingExtraError
from app.jobs import workers
from app.jobs.workers import (
    EmbeddedWorker,
    ProcessRunner,
    RedisQueue,
    requeue_unowned,
    run_queued_job,
    start_sweep_thread,
    sweep_forever,
)


async def _wait_finished(service, job_id: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while (state := service.get(job_id).state) not in ("done", "failed", "cancelled"):
        assert time.monotonic() < deadline, f"job still {state}"
        await asyncio.sleep(0.02)
    return state


async def test_the_embedded_worker_runs_a_submitted_job_and_stops(service, submit, runner_for, ingest):
    worker = EmbeddedWorker(runner_for(ingest), asyncio.Semaphore(1))
    service.notify = worker.wake
    worker.start()
    try:
        job_id = await asyncio.to_thread(submit, "a.txt", "b.txt")
        assert await _wait_finished(service, job_id) == "done"
    finally:
        await worker.stop()
    assert ingest.calls == [("ingest", "a.txt"), ("ingest", "b.txt")]
    assert worker._task is not None and worker._task.done()


async def test_the_embedded_worker_resumes_a_job_queued_before_it_started(service, submit, runner_for, ingest):
    job_id = submit("a.txt")  # recorded by a process that stopped before running it
    worker = EmbeddedWorker(runner_for(ingest), asyncio.Semaphore(1))
    worker.start()
    try:
        assert await _wait_finished(service, job_id) == "done"
    finally:
        await worker.stop()


class RecordingQueue:
    def __init__(self) -> None:
        self.enqueued: list[tuple[str, int]] = []

    def enqueue(self, job_id: str, index: int) -> None:
        self.enqueued.append((job_id, index))


def test_requeue_unowned_enqueues_the_files_no_live_worker_holds(service, submit):
    never_enqueued, held, orphaned, finished = (submit(name) for name in ("a.txt", "b.txt", "c.txt", "d.txt"))
    assert service.store.claim(held, "host-a:1:x", lease_seconds=3600)
    assert service.store.claim(orphaned, "host-b:2:y", lease_seconds=0.01)
    service.cancel(finished)
    time.sleep(0.02)
    queue = RecordingQueue()
    assert requeue_unowned(service.store, queue) == 2  # type: ignore[arg-type]
    assert queue.enqueued == [(never_enqueued, 0), (orphaned, 0)]  # one task per file
    assert service.get(orphaned).owner is None and service.get(held).owner == "host-a:1:x"


def test_a_queued_job_runs_with_the_runner_installed_in_the_process(service, submit, runner_for, ingest, monkeypatch):
    monkeypatch.setattr(workers, "PROCESS_RUNNER", ProcessRunner())
    workers.PROCESS_RUNNER.install(runner_for(ingest))
    job_id = submit("a.txt")
    assert run_queued_job(job_id)
    assert service.get(job_id).state == "done" and ingest.calls == [("ingest", "a.txt")]
    assert not run_queued_job(job_id)  # enqueued twice: the second run finds it finished


def test_redis_mode_without_the_redis_extra_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "rq", None)  # as if `pip install ragstack` without `[redis]`
    with pytest.raises(MissingExtraError, match=r'RAG_JOB_QUEUE=redis needs .*pip install "ragstack\[redis\]"'):
        RedisQueue("redis://127.0.0.1:1/0")


class CountingSweeps:
    """A job service stand-in counting sweeps; the first `failures` raise as if the data volume were unreadable."""

    def __init__(self, failures: int = 0) -> None:
        self.sweeps = 0
        self.failures = failures

    def sweep(self) -> None:
        self.sweeps += 1
        if self.sweeps <= self.failures:
            raise OSError("volume unavailable (injected)")


def test_the_worker_sweep_thread_sweeps_at_start_then_periodically_and_survives_failures():
    service = CountingSweeps(failures=1)
    stop = start_sweep_thread(service, every=0.05)  # type: ignore[arg-type]
    try:
        deadline = time.monotonic() + 5
        while service.sweeps < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
    assert service.sweeps >= 3  # the failed first pass did not stop it


async def test_the_api_sweep_task_sweeps_at_start_with_its_other_passes_each_failing_alone():
    service, other = CountingSweeps(failures=1), CountingSweeps()
    task = asyncio.create_task(sweep_forever(service, every=3600, also=[other.sweep]))  # type: ignore[arg-type]
    for _ in range(200):
        if other.sweeps:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    assert service.sweeps == 1 and other.sweeps == 1  # the job sweep's failure did not skip the next pass


def test_redis_mode_enqueues_one_task_per_file_and_a_worker_runs_them(
    service, submit, runner_for, ingest, redis_server
):
    import redis
    import rq

    queue = RedisQueue(redis_server, store=service.store)
    service.notify = queue.notify
    job_id = submit("a.txt", "b.txt", "c.txt")
    assert [(task.func_name, task.args) for task in queue.queue.jobs] == [
        ("app.jobs.workers.run_queued_file", (job_id, index)) for index in range(3)
    ]
    process_runner = ProcessRunner()
    process_runner.install(runner_for(ingest), queue)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(workers, "PROCESS_RUNNER", process_runner)
        rq.SimpleWorker([queue.queue], connection=redis.Redis.from_url(redis_server)).work(burst=True)
    job = service.get(job_id)
    assert job.state == "done" and [f.state for f in job.files] == ["done"] * 3
    assert sorted(ingest.calls) == [("ingest", "a.txt"), ("ingest", "b.txt"), ("ingest", "c.txt")]


def test_redis_mode_re_enqueues_the_file_of_a_dead_worker(service, submit, redis_server):
    queue = RedisQueue(redis_server, store=service.store)
    job_id = submit("a.txt", "b.txt")
    assert service.store.claim(job_id, "host-a:1:x", lease_seconds=3600)  # file 0: alive
    assert service.store.claim(job_id, "host-b:2:y", lease_seconds=0.01)  # file 1: its worker died
    time.sleep(0.02)
    assert queue.requeue_orphans() == 1
    assert [task.args for task in queue.queue.jobs] == [(job_id, 1)]
    assert [f.owner for f in service.get(job_id).files] == ["host-a:1:x", None]


def test_a_worker_told_to_stop_gives_its_file_back_and_enqueues_it_again(service, submit, runner_for, monkeypatch):
    """SIGTERM to `rag worker` sets the process's stopping event: the file stops at its next component and is
    released (queued, no owner) and enqueued again, well within its lease."""
    from app.jobs.store import FileLease
    from app.jobs.workers import run_queued_file
    from app.timing import _watcher

    process_runner = ProcessRunner()
    queue = RecordingQueue()

    class StoppedMidFile:
        def discard(self, collection: str, document_id: str) -> int:
            return 0

        def ingest_bytes(self, data: bytes, filename: str, **kwargs: object) -> None:
            watcher = _watcher.get()
            assert watcher is not None
            watcher.started("embedder", "OnnxDocumentEmbedder")
            process_runner.stopping.set()  # SIGTERM arrives while the file is being embedded
            watcher.started("writer", "DocumentWriter")
            raise AssertionError("the writer ran after the worker was told to stop")

    process_runner.install(runner_for(StoppedMidFile()), queue)  # type: ignore[arg-type]
    monkeypatch.setattr(workers, "PROCESS_RUNNER", process_runner)
    job_id = submit("a.txt")
    assert run_queued_file(job_id, 0)
    file = service.get(job_id).files[0]
    assert (file.state, file.owner, file.attempts, file.chunks_done) == ("queued", None, 1, 0)
    assert service.get(job_id).state == "queued" and queue.enqueued == [(job_id, 0)]
    assert isinstance(service.store.claim(job_id, "next:1:x", 30), FileLease)  # the next worker takes it at once


def test_the_worker_serves_its_metrics_on_its_own_port():
    import urllib.request

    from app.jobs.workers import serve_metrics
    from app.testing.servers import free_port

    port = free_port()
    server = serve_metrics(port)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            body = response.read().decode()
    finally:
        server.shutdown()
    assert "rag_uploads" in body and "rag_ingest_duration_seconds" in body


@pytest.mark.integration
def test_rag_worker_warms_the_indexing_pipeline_and_never_the_query_pipeline(
    tmp_path, redis_server, make_tiny_profile, monkeypatch
):
    from app.composition import load_pipeline_set
    from app.jobs.workers import run_rq_worker
    from app.settings import Settings

    settings = Settings(
        data_dir=tmp_path / "data",
        pipelines_dir=make_tiny_profile(tmp_path / "pipelines"),
        job_queue="redis",
        redis_url=redis_server,
        ingest_worker=False,  # warm here, in this process, where the calls can be seen
    )
    pipelines = load_pipeline_set(settings)
    warmed: list[str] = []
    monkeypatch.setattr(pipelines.indexing.pipeline, "warm_up", lambda: warmed.append("indexing"))
    monkeypatch.setattr(pipelines.query.pipeline, "warm_up", lambda: warmed.append("query"))
    run_rq_worker(settings, pipelines, burst=True)  # the queue is empty: it starts, finds nothing, returns
    assert warmed == ["indexing"]
