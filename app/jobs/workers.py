"""The workers that run jobs: the embedded one (default) and the Redis queue's (`RAG_JOB_QUEUE=redis`).

- Embedded: an in-process worker (an asyncio task started by the app's lifespan) polls the job table.
- Redis: the API enqueues job ids with rq and `rag worker` processes (rq's `SimpleWorker`, pipelines loaded once per
  process) run them; the job table stays in SQLite on the shared data volume. rq and redis are imported only here,
  inside the functions that use them (the `[redis]` extra).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from types import ModuleType
from typing import TYPE_CHECKING

from haystack import logging

from app.extras import extra_required
from app.jobs.models import JobState
from app.jobs.runner import JobRunner
from app.jobs.service import JobService
from app.jobs.store import JobStore

if TYPE_CHECKING:
    from app.pipeline_loader import PipelineSet
    from app.settings import Settings

logger = logging.getLogger(__name__)

RQ_QUEUE_NAME = "rag-ingest"
_POLL_SECONDS = 1.0
SWEEP_EVERY_SECONDS = 3600.0  # the retention sweep: at start, then hourly, in every process that runs jobs


def sweep_once(service: JobService) -> None:
    """One retention pass; a failure is logged and the next pass tries again (a sweep never stops a worker)."""
    try:
        service.sweep()
    except (OSError, sqlite3.Error):
        logger.exception("Job retention sweep failed; retried in {seconds} s", seconds=SWEEP_EVERY_SECONDS)


async def sweep_forever(service: JobService, every: float = SWEEP_EVERY_SECONDS) -> None:
    """The API process's retention sweep (an asyncio task): now, then every `every` seconds."""
    while True:
        await asyncio.to_thread(sweep_once, service)
        await asyncio.sleep(every)


def start_sweep_thread(service: JobService, every: float = SWEEP_EVERY_SECONDS) -> threading.Event:
    """`rag worker`'s retention sweep (a daemon thread beside rq's loop): now, then every `every` seconds; set the
    returned event to stop it."""
    stop = threading.Event()

    def loop() -> None:
        while True:
            sweep_once(service)
            if stop.wait(every):
                return

    threading.Thread(target=loop, name="rag-job-sweep", daemon=True).start()
    return stop


class EmbeddedWorker:
    """The in-process worker: an asyncio task polling the job table; each file takes one of the app's ingest slots
    (shared with synchronous uploads), so background jobs never add CPU contention beyond RAG_INGEST_CONCURRENCY."""

    def __init__(self, runner: JobRunner, slots: asyncio.Semaphore) -> None:
        self.runner = runner
        self.slots = slots
        self.stopping = threading.Event()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="rag-job-worker")

    def wake(self, _job_id: str = "") -> None:
        """Look for work now (callable from any thread)."""
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def stop(self) -> None:
        """Stop at the next component boundary; an interrupted file is re-queued and resumed at the next start."""
        self.stopping.set()
        self.wake()
        if self._task is not None:
            await self._task

    @contextlib.contextmanager
    def _slot(self) -> Iterator[None]:
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(self.slots.acquire(), self._loop).result()
        try:
            yield
        finally:
            self._loop.call_soon_threadsafe(self.slots.release)

    async def _run(self) -> None:
        assert self._wake is not None
        while not self.stopping.is_set():
            self._wake.clear()
            ran = False
            for job_id in await asyncio.to_thread(self.runner.store.claimable):
                if self.stopping.is_set():
                    break
                try:
                    ran = (
                        await asyncio.to_thread(self.runner.run, job_id, slot=self._slot, stopping=self.stopping) or ran
                    )
                except Exception:  # the worker's outermost boundary: one broken job must not stop the others
                    logger.exception("Job {job_id} failed unexpectedly", job_id=job_id)
                    await asyncio.to_thread(
                        self.runner.store.set_state,
                        job_id,
                        JobState.FAILED,
                        error="internal error while running the job (see the service log)",
                    )
            if not ran:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=_POLL_SECONDS)


# -- Redis mode (rq) -------------------------------------------------------------------------------------------


def _rq() -> tuple[ModuleType, ModuleType]:
    """The `redis` and `rq` modules, imported on first use (only Redis mode needs them: the `[redis]` extra)."""
    with extra_required("redis", "RAG_JOB_QUEUE=redis"):
        import redis
        import rq
    return redis, rq


class RedisQueue:
    """Enqueues job ids on an rq queue; `rag worker` processes run them."""

    def __init__(self, url: str) -> None:
        redis, rq = _rq()
        self.queue = rq.Queue(RQ_QUEUE_NAME, connection=redis.Redis.from_url(url))

    def enqueue(self, job_id: str) -> None:
        self.queue.enqueue_call(
            run_queued_job,
            args=(job_id,),
            timeout=-1,
            result_ttl=3600,
            failure_ttl=7 * 86400,
            description=f"ingest job {job_id}",
        )

    def requeue_orphans(self, store: JobStore) -> int:
        """Enqueue every unfinished job nobody runs (at start and periodically: a dead worker's job is resumed)."""
        orphans = store.requeue_orphans()
        for job_id in orphans:
            self.enqueue(job_id)
        return len(orphans)


def requeue_unowned(store: JobStore, queue: RedisQueue) -> int:
    """At API start: enqueue every unfinished job no live worker holds (one recorded just before a crash was
    perhaps never enqueued; a job enqueued twice runs once: the second run finds it finished or claimed)."""
    store.requeue_orphans()
    claimable = store.claimable()
    for job_id in claimable:
        queue.enqueue(job_id)
    return len(claimable)


class ProcessRunner:
    """The `JobRunner` of one worker process, built once: an rq task is a plain function called with a job id, so the
    runner it uses (pipelines loaded and warmed once per process) is held here, not rebuilt per task.

    `rag worker` installs the runner it built before it starts taking tasks; a process that runs a task without one
    (another rq worker command) builds it from `Settings()` through the composition root on first use.
    """

    def __init__(self) -> None:
        self._runner: JobRunner | None = None
        self._lock = threading.Lock()

    def install(self, runner: JobRunner) -> None:
        with self._lock:
            self._runner = runner

    def get(self) -> JobRunner:
        with self._lock:
            if self._runner is None:
                from app.composition import job_runner, load_pipeline_set
                from app.settings import Settings

                settings = Settings()
                pipelines = load_pipeline_set(settings)
                pipelines.warm_up()
                self._runner = job_runner(settings, pipelines)
            return self._runner


PROCESS_RUNNER = ProcessRunner()


def run_queued_job(job_id: str) -> bool:
    """The rq task: run one job with this process's runner."""
    return PROCESS_RUNNER.get().run(job_id)


def run_rq_worker(settings: Settings, pipelines: PipelineSet, *, burst: bool = False) -> None:
    """`rag worker`: start the indexing worker process (or, with RAG_INGEST_WORKER=false, warm the indexing pipeline
    here), resume orphaned jobs, then run queued jobs (with the retention sweep at start and hourly beside them)."""
    from app.composition import ingest_worker, job_runner, job_service

    redis, rq = _rq()
    indexer = ingest_worker(settings) if settings.ingest_worker else None
    if indexer is None:
        pipelines.indexing.pipeline.warm_up()  # jobs only index: the query pipeline (and its LLM) stays cold
    else:
        indexer.start()  # files are indexed in a recycled worker process (see app/services/ingest_worker.py)
    runner = job_runner(settings, pipelines, worker=indexer)
    PROCESS_RUNNER.install(runner)
    queue = RedisQueue(settings.redis_url)
    resumed = queue.requeue_orphans(runner.store)
    logger.info("Job worker ready on {queue} ({resumed} orphaned jobs re-queued)", queue=RQ_QUEUE_NAME, resumed=resumed)
    stop_sweep = start_sweep_thread(job_service(settings))
    worker = rq.SimpleWorker([queue.queue], connection=redis.Redis.from_url(settings.redis_url))
    try:
        worker.work(burst=burst, with_scheduler=False)
    finally:
        stop_sweep.set()
        if indexer is not None:
            indexer.close()
