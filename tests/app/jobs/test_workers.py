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


async def test_the_api_sweep_task_sweeps_at_start():
    service = CountingSweeps()
    task = asyncio.create_task(sweep_forever(service, every=3600))  # type: ignore[arg-type]
    for _ in range(200):
        if service.sweeps:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    assert service.sweeps == 1
