"""The workers that run job files: the embedded one (default) and the Redis queue's (`RAG_JOB_QUEUE=redis`).

One unit of work is one file of a job (claimed and leased on its own, see `app.jobs.store`):

- Embedded: an in-process worker (an asyncio task started by the app's lifespan) claims the next file from the job
  table, runs it, and claims again.
- Redis: the API enqueues one rq task per file (job id and index) and `rag worker` processes (rq's `SimpleWorker`,
  the indexing pipeline loaded once per process) run them, so one upload's files spread over every worker. The job
  table is shared through PostgreSQL (RAG_STATE_URL) or, on one host, the SQLite file on the shared data volume. A
  file whose worker died is enqueued again once its lease has run out; `rag worker` stops on SIGTERM before the
  pipeline's next component, gives its file back and enqueues it again. rq and redis are imported only here, inside
  the functions that use them (the `[redis]` extra).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from types import FrameType, ModuleType
from typing import TYPE_CHECKING, Any

from haystack import logging

from app import metrics
from app.errors import UpstreamError
from app.extras import extra_required
from app.jobs.runner import JobRunner
from app.jobs.service import JobService
from app.jobs.store import JobStore
from app.state import database_errors

if TYPE_CHECKING:
    from app.pipeline_loader import PipelineSet
    from app.settings import Settings

logger = logging.getLogger(__name__)

RQ_QUEUE_NAME = "rag-ingest"
_POLL_SECONDS = 1.0
SWEEP_EVERY_SECONDS = 3600.0  # the retention sweep: at start, then hourly, in every process that runs jobs


def sweep_once(service: JobService, also: Sequence[Callable[[], object]] = ()) -> None:
    """One retention pass, then the `also` passes (the API's: expired vector stores); a failure is logged and the
    next pass tries again (a sweep never stops a worker)."""
    failures: tuple[type[BaseException], ...] = (UpstreamError, *database_errors())
    for sweep in (service.sweep, *also):
        try:
            sweep()
        except failures:
            logger.exception("Retention sweep failed; retried in {seconds} s", seconds=SWEEP_EVERY_SECONDS)


async def sweep_forever(
    service: JobService, every: float = SWEEP_EVERY_SECONDS, also: Sequence[Callable[[], object]] = ()
) -> None:
    """The API process's retention sweep (an asyncio task): now, then every `every` seconds."""
    while True:
        await asyncio.to_thread(sweep_once, service, also)
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
    """The in-process worker: an asyncio task claiming the next file from the job table; each file takes one of the
    app's ingest slots (shared with synchronous uploads), so background jobs never add CPU contention beyond
    RAG_INGEST_CONCURRENCY."""

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
        """Stop at the next component boundary; an interrupted file is queued again (released) for the next start."""
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
        await asyncio.to_thread(self.runner.settle)
        while not self.stopping.is_set():
            self._wake.clear()
            lease = await asyncio.to_thread(self.runner.claim_next)
            if lease is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=_POLL_SECONDS)
                continue
            try:
                await asyncio.to_thread(self.runner.run_claimed, lease, slot=self._slot, stopping=self.stopping)
            except Exception:  # the worker's outermost boundary: one broken file must not stop the others
                logger.exception(
                    "Job {job_id}: file {index} failed unexpectedly", job_id=lease.job_id, index=lease.index
                )
                await asyncio.to_thread(
                    self.runner.fail, lease, "internal error while running the file (see the service log)"
                )


# -- Redis mode (rq) -------------------------------------------------------------------------------------------


def _rq() -> tuple[ModuleType, ModuleType]:
    """The `redis` and `rq` modules, imported on first use (only Redis mode needs them: the `[redis]` extra)."""
    with extra_required("redis", "RAG_JOB_QUEUE=redis"):
        import redis
        import rq
    return redis, rq


class RedisQueue:
    """Enqueues one rq task per job file; `rag worker` processes run them. `store`: the job table, to find a job's
    files (`notify`, `enqueue(job_id)`)."""

    def __init__(self, url: str, store: JobStore | None = None) -> None:
        redis, rq = _rq()
        self.store = store
        self.queue = rq.Queue(RQ_QUEUE_NAME, connection=redis.Redis.from_url(url))

    def enqueue(self, job_id: str, index: int | None = None) -> int:
        """Enqueue file `index` of a job, or (None) each of its files nobody runs; how many tasks were enqueued."""
        if index is None:
            if self.store is None:
                raise ValueError("RedisQueue.enqueue(job_id) without an index needs the job store")
            indexes = [i for _, i in self.store.claimable_files(job_id)]
        else:
            indexes = [index]
        for file_index in indexes:
            self.queue.enqueue_call(
                run_queued_file,
                args=(job_id, file_index),
                timeout=-1,
                result_ttl=3600,
                failure_ttl=7 * 86400,
                description=f"ingest job {job_id} file {file_index}",
            )
        return len(indexes)

    def notify(self, job_id: str) -> None:
        """The job service's `notify`: enqueue a submitted (or retried) job's files, one task each."""
        self.enqueue(job_id)

    def requeue_orphans(self, store: JobStore | None = None) -> int:
        """Enqueue every file whose worker died (its lease ran out), at start and periodically."""
        store = store if store is not None else self.store
        assert store is not None
        orphans = store.requeue_orphans()
        for job_id, index in orphans:
            self.enqueue(job_id, index)
        return len(orphans)


def requeue_unowned(store: JobStore, queue: RedisQueue) -> int:
    """At API start: enqueue every unfinished file no live worker holds (one recorded just before a crash was
    perhaps never enqueued; a file enqueued twice runs once: the second task finds it finished or claimed)."""
    store.requeue_orphans()
    claimable = store.claimable_files()
    for job_id, index in claimable:
        queue.enqueue(job_id, index)
    return len(claimable)


class ProcessRunner:
    """The `JobRunner` of one worker process, built once: an rq task is a plain function called with a job id and a
    file index, so the runner it uses (pipelines loaded and warmed once per process) is held here, not rebuilt per
    task; with the queue to give a file back to, and the event SIGTERM sets.

    `rag worker` installs the runner it built before it starts taking tasks; a process that runs a task without one
    (another rq worker command) builds it from `Settings()` through the composition root on first use.
    """

    def __init__(self) -> None:
        self._runner: JobRunner | None = None
        self._lock = threading.Lock()
        self.queue: RedisQueue | None = None
        self.stopping = threading.Event()

    def install(self, runner: JobRunner, queue: RedisQueue | None = None) -> None:
        with self._lock:
            self._runner = runner
            self.queue = queue

    def get(self) -> JobRunner:
        with self._lock:
            if self._runner is None:
                from app.composition import job_runner, load_pipeline_set
                from app.settings import Settings

                settings = Settings()
                pipelines = load_pipeline_set(settings)
                pipelines.indexing.pipeline.warm_up()  # jobs only index: the query pipeline (and its LLM) stays cold
                self._runner = job_runner(settings, pipelines)
            return self._runner


PROCESS_RUNNER = ProcessRunner()


def run_queued_file(job_id: str, index: int) -> bool:
    """The rq task: run one file of a job with this process's runner (False: finished, or a live worker holds it).
    A file given back because the worker is stopping is enqueued again for the next worker."""
    runner = PROCESS_RUNNER.get()
    ran = runner.run_file(job_id, index, stopping=PROCESS_RUNNER.stopping)
    queue = PROCESS_RUNNER.queue
    if ran and PROCESS_RUNNER.stopping.is_set() and queue is not None:
        if (job_id, index) in runner.store.claimable_files(job_id):
            queue.enqueue(job_id, index)
    return ran


def run_queued_job(job_id: str) -> bool:
    """The rq task of an earlier release (one task per job): runs the job's files nobody holds, one after another."""
    return PROCESS_RUNNER.get().run(job_id, stopping=PROCESS_RUNNER.stopping)


def serve_metrics(port: int) -> Any:
    """Serve this process's Prometheus metrics on `port` (every path answers `/metrics`; aggregated over processes in
    multiprocess mode); the server, which runs on a daemon thread."""
    from prometheus_client import REGISTRY, CollectorRegistry, multiprocess, start_http_server

    registry = REGISTRY
    if os.environ.get(metrics.MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    server, _thread = start_http_server(port, registry=registry)
    return server


def _stopping_worker_class(rq: ModuleType, stopping: threading.Event) -> Any:
    """rq's `SimpleWorker` whose warm shutdown (SIGTERM, Ctrl-C) also stops the file being run at its next pipeline
    step (it is given back), instead of waiting for the whole file: a worker stops well within its lease."""

    class StoppingWorker(rq.SimpleWorker):  # type: ignore[name-defined]
        def request_stop(self, signum: int, frame: FrameType | None) -> None:
            logger.info("Job worker stopping ({signal}): the file in progress is given back", signal=signum)
            stopping.set()
            super().request_stop(signum, frame)

    return StoppingWorker


def run_rq_worker(settings: Settings, pipelines: PipelineSet, *, burst: bool = False) -> None:
    """`rag worker`: start the indexing worker process (or, with RAG_INGEST_WORKER=false, warm the indexing pipeline
    here: the query pipeline and its LLM stay cold), serve `/metrics` on RAG_WORKER_METRICS_PORT, resume orphaned
    files, then run queued files (with the retention sweep at start and hourly beside them) until SIGTERM."""
    from app.composition import ingest_worker, job_runner, job_service

    redis, rq = _rq()
    indexer = ingest_worker(settings) if settings.ingest_worker else None
    if indexer is None:
        pipelines.indexing.pipeline.warm_up()  # jobs only index: the query pipeline (and its LLM) stays cold
    else:
        indexer.start()  # files are indexed in a recycled worker process (see app/services/ingest_worker.py)
    metrics_server = serve_metrics(settings.worker_metrics_port) if settings.worker_metrics_port else None
    runner = job_runner(settings, pipelines, worker=indexer)
    queue = RedisQueue(settings.redis_url, store=runner.store)
    PROCESS_RUNNER.install(runner, queue)
    runner.settle()
    resumed = queue.requeue_orphans()
    logger.info(
        "Job worker ready on {queue} as {owner} ({resumed} orphaned files re-queued, metrics on port {port})",
        owner=runner.owner,
        queue=RQ_QUEUE_NAME,
        resumed=resumed,
        port=settings.worker_metrics_port,
    )
    stop_sweep = start_sweep_thread(job_service(settings))
    worker_class = _stopping_worker_class(rq, PROCESS_RUNNER.stopping)
    worker = worker_class([queue.queue], connection=redis.Redis.from_url(settings.redis_url))
    try:
        worker.work(burst=burst, with_scheduler=False)
    finally:
        stop_sweep.set()
        if metrics_server is not None:
            metrics_server.shutdown()
        if indexer is not None:
            indexer.close()
