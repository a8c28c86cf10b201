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
        self.enqueued: list[str] = []

    def enqueue(self, job_id: str) -> None:
        self.enqueued.append(job_id)


def test_requeue_unowned_enqueues_the_jobs_no_live_worker_holds(service, submit):
    never_enqueued, held, orphaned, finished = (submit(name) for name in ("a.txt", "b.txt", "c.txt", "d.txt"))
    assert service.store.claim(held, "host-a:1:x", lease_seconds=3600)
    assert service.store.claim(orphaned, "host-b:2:y", lease_seconds=0.01)
    service.cancel(finished)
    time.sleep(0.02)
    queue = RecordingQueue()
    assert requeue_unowned(service.store, queue) == 2  # type: ignore[arg-type]
    assert queue.enqueued == [never_enqueued, orphaned]
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
