"""Indexing in a worker process that is replaced before its memory grows, so the server's own memory stays flat.

Ingestion keeps native memory that no Python code holds: LanceDB keeps state for every table version a process has
written (about 0.1-0.3 MiB per write, not returned when the table, its connection and its cache are dropped), and
glibc keeps freed memory of busy threads (`bench/memory.py` measures each part; docs/benchmarks.md has the figures).
Neither is ours to fix, so `rag serve` bounds it: the indexing pipeline runs in one worker process (a
`ProcessPoolExecutor` of `spawn`ed processes, one per RAG_INGEST_CONCURRENCY slot), and that worker is replaced after
RAG_INGEST_WORKER_MAX_FILES files or once its memory grew by RAG_INGEST_WORKER_MAX_GROWTH_MB since it was warmed up.
The replacement is started and warmed up while the old worker keeps indexing, then takes the next files; the old one
finishes what it has and exits. A worker whose server dies exits within a second (it watches its parent), so a
restarted server never races an orphan for a job's files.

The API process keeps its own `IngestService` for the cheap calls (duplicate checks, deletes, PDF page counts) and
hands each file's indexing to the worker: a synchronous upload through `WorkerIngestService.ingest_bytes`, a job's
file through `index_job_file`, which records the job's progress from inside the worker as the in-process runner does.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import multiprocessing.util
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from haystack import logging

from app import metrics
from app.errors import IndexingWorkerError
from app.services.ingest import IngestResult, IngestService

if TYPE_CHECKING:
    from app.jobs.models import Job, JobFile
    from app.settings import Settings

logger = logging.getLogger(__name__)

_PARENT_POLL_S = 0.5
_WAIT_SLICE_S = 0.25
# A worker's first files cost memory once (the table's metadata and index caches, thread arenas): its growth is
# counted from its size after SETTLE_FILES files, at most SETTLE_ALLOWANCE_MB above its size after warm-up (so that a
# huge first file does not raise the mark).
SETTLE_FILES = 10
SETTLE_ALLOWANCE_MB = 128.0


def rss_mib(pid: int | None = None) -> float:
    """Resident memory of a process (this one by default), MiB; 0.0 when it is gone."""
    try:
        status = Path(f"/proc/{pid or 'self'}/status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# -- the worker process side --------------------------------------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _watch_parent(parent_pid: int) -> None:
    while True:
        time.sleep(_PARENT_POLL_S)
        if os.getppid() != parent_pid:  # the server died (SIGKILL, OOM): never write on without it
            os._exit(1)


def _init_worker(settings_json: str, parent_pid: int, stop: Any) -> None:
    """Build the indexing side in the new worker process: settings, pipelines (indexing warmed up), services."""
    from app.composition import ingest_service, job_runner, load_pipeline_set
    from app.logs import configure_logging
    from app.memory import limit_malloc_arenas
    from app.settings import Settings
    from components.converters.isolated_converter import shutdown_pools

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the process group: the server stops the worker
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="rag-parent-watch", daemon=True).start()
    settings = Settings.model_validate_json(settings_json)
    configure_logging(settings)
    metrics.stop_recording()  # the server records each file it hands over (and exports the metrics)
    limit_malloc_arenas(settings.malloc_arena_max)
    pipelines = load_pipeline_set(settings)
    pipelines.indexing.pipeline.warm_up()
    # the parser pool of this worker's converters goes with it (multiprocessing children skip atexit)
    multiprocessing.util.Finalize(None, shutdown_pools, exitpriority=10)
    _WORKER.update(ingest=ingest_service(settings, pipelines), runner=job_runner(settings, pipelines), stop=stop)


def _ready() -> tuple[int, float]:
    return os.getpid(), rss_mib()


def _ingest(data: bytes, filename: str, options: dict[str, Any]) -> tuple[IngestResult, float]:
    result = _WORKER["ingest"].ingest_bytes(data, filename, **options)
    return result, rss_mib()


def _index_job_file(job: Job, file: JobFile, data: bytes) -> tuple[IngestResult, float]:
    result = _WORKER["runner"].index_file(job, file, data, _WORKER["stop"])
    return result, rss_mib()


# -- the server side -----------------------------------------------------------------------------------------------


@dataclass
class _Worker:
    """One generation of the worker process (its executor, its memory after warm-up, the files it indexed)."""

    executor: ProcessPoolExecutor
    pid: int = 0
    ready_mib: float = 0.0  # after warm-up
    baseline_mib: float | None = None  # after its first files (SETTLE_FILES): growth is counted from here
    files: int = 0
    retiring: bool = False
    started: float = field(default_factory=time.monotonic)


class IngestWorker:
    """The recycled indexing worker process of a server (see the module docstring)."""

    def __init__(self, settings: Settings, *, max_files: int, max_growth_mb: int, processes: int = 1) -> None:
        """`max_files` / `max_growth_mb`: replace the worker after that many files / that much growth (0: never)."""
        if max_files < 0 or max_growth_mb < 0 or processes < 1:
            raise ValueError("max_files and max_growth_mb must be >= 0 and processes >= 1")
        self.settings = settings
        self.max_files = max_files
        self.max_growth_mb = max_growth_mb
        self.processes = processes
        self.replaced = 0
        self._context = multiprocessing.get_context("spawn")
        self._stop = self._context.Event()
        self._lock = threading.Lock()
        self._current: _Worker | None = None
        self._next: _Worker | None = None

    def _spawn(self) -> _Worker:
        executor = ProcessPoolExecutor(
            max_workers=self.processes,
            mp_context=self._context,
            initializer=_init_worker,
            initargs=(self.settings.model_dump_json(), os.getpid(), self._stop),
        )
        return _Worker(executor)

    def start(self) -> None:
        """Start the first worker and wait until its pipeline is warmed up (a failure there is raised here)."""
        worker = self._spawn()
        self._warmed(worker, worker.executor.submit(_ready).result())
        with self._lock:
            self._current = worker

    @staticmethod
    def _warmed(worker: _Worker, ready: tuple[int, float]) -> None:
        worker.pid, worker.ready_mib = ready
        logger.info("Indexing worker {pid} ready ({rss} MiB)", pid=worker.pid, rss=round(worker.ready_mib, 1))

    @property
    def pid(self) -> int:
        """The pid of the worker that takes the next file."""
        with self._lock:
            return self._current.pid if self._current is not None else 0

    def call(
        self, function: Callable[..., tuple[Any, float]], *args: Any, stopping: threading.Event | None = None
    ) -> Any:
        """Run `function(*args)` in the worker; its result. `stopping` (the server shutting down) is passed on."""
        with self._lock:
            worker = self._current
        if worker is None:
            raise RuntimeError("the indexing worker is not started")
        try:
            future: Future[tuple[Any, float]] = worker.executor.submit(function, *args)
            while True:
                try:
                    result, rss = future.result(timeout=_WAIT_SLICE_S)
                    break
                except concurrent.futures.TimeoutError:
                    if stopping is not None and stopping.is_set():
                        self._stop.set()  # the worker's runner stops at its next pipeline step
        except BrokenProcessPool as error:  # killed (OOM, SIGKILL) or crashed: a new worker takes the next files
            self._replace_broken(worker)
            raise IndexingWorkerError(
                "the indexing worker process died while it indexed this file; try again"
            ) from error
        self._after_file(worker, rss)
        return result

    def _replace_broken(self, worker: _Worker) -> None:
        with self._lock:
            if worker is not self._current:
                return  # another caller replaced it already
            worker.retiring = True
        logger.warning("Indexing worker {pid} died; starting a new one", pid=worker.pid)
        replacement = self._spawn()
        self._warmed(replacement, replacement.executor.submit(_ready).result())
        with self._lock:
            if self._current is worker:
                self._current = replacement
                self.replaced += 1
        worker.executor.shutdown(wait=False, cancel_futures=True)

    def _after_file(self, worker: _Worker, rss: float) -> None:
        with self._lock:
            worker.files += 1
            if worker.retiring or worker is not self._current or self._next is not None:
                return
            ceiling = worker.ready_mib + SETTLE_ALLOWANCE_MB
            if worker.baseline_mib is None and worker.files >= SETTLE_FILES:
                worker.baseline_mib = min(rss, ceiling)
            grown = rss - (worker.baseline_mib if worker.baseline_mib is not None else ceiling)
            by_files = self.max_files and worker.files >= self.max_files
            by_memory = self.max_growth_mb and grown > self.max_growth_mb
            if not (by_files or by_memory):
                return
            worker.retiring = True
            self._next = replacement = self._spawn()
        logger.info(
            "Replacing indexing worker {pid} after {files} files ({grown} MiB above its settled size)",
            pid=worker.pid,
            files=worker.files,
            grown=round(grown, 1),
        )
        replacement.executor.submit(_ready).add_done_callback(lambda ready: self._swap(worker, replacement, ready))

    def _swap(self, old: _Worker, new: _Worker, ready: Future[tuple[int, float]]) -> None:
        try:
            self._warmed(new, ready.result())
        except Exception as error:  # noqa: BLE001  # a worker that cannot start: keep the old one, try again later
            logger.error("A replacement indexing worker failed to start: {error}", error=str(error))
            with self._lock:
                self._next = None
                old.retiring = False
                old.files = 0
            new.executor.shutdown(wait=False, cancel_futures=True)
            return
        with self._lock:
            self._current, self._next = new, None
            self.replaced += 1
        old.executor.shutdown(wait=False)  # it finishes the files it has, then exits

    def close(self) -> None:
        """Stop the workers: a job's file in progress stops at its next step; waits for them to exit."""
        self._stop.set()
        with self._lock:
            workers = [w for w in (self._current, self._next) if w is not None]
            self._current = self._next = None
        for worker in workers:
            worker.executor.shutdown(wait=True, cancel_futures=True)


class WorkerIngestService(IngestService):
    """An `IngestService` whose indexing runs in an `IngestWorker`; the cheap calls stay in this process."""

    def __init__(self, pipelines: Any, worker: IngestWorker, **kwargs: Any) -> None:
        super().__init__(pipelines, **kwargs)
        self.worker = worker

    def ingest_bytes(
        self,
        data: bytes,
        filename: str,
        *,
        collection: str,
        tags: dict[str, Any] | None = None,
        content_type: str | None = None,
        pdf_pages: int | None = None,
        split: tuple[int, int] | None = None,
        access: list[str] | None = None,
        source_id: str | None = None,
        replace: bool = False,
    ) -> IngestResult:
        """Index one file in the worker process (see `IngestService.ingest_bytes`)."""
        options = {
            "collection": collection,
            "tags": tags,
            "content_type": content_type,
            "pdf_pages": pdf_pages,
            "split": split,
            "access": access,
            "source_id": source_id,
            "replace": replace,
        }
        try:
            result: IngestResult = self.worker.call(_ingest, data, filename, options)
        except IndexingWorkerError as error:  # reported in the result, as every other failure of one file
            result = IngestResult.refused(filename, content_type, error.message, error.code)
        _record(collection, result)
        return result

    def index_job_file(
        self, job: Job, file: JobFile, data: bytes, stopping: threading.Event | None = None
    ) -> IngestResult:
        """Index one file of a job in the worker process, which records the job's progress itself."""
        result: IngestResult = self.worker.call(_index_job_file, job, file, data, stopping=stopping)
        _record(job.collection, result)
        return result


def _record(collection: str, result: IngestResult) -> None:
    metrics.record_ingest(collection, result.status, result.pages, result.chunks, result.duration_ms / 1000.0)
