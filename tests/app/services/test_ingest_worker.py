"""The recycled indexing worker of `rag serve`: files are indexed in another process, which is replaced after N files
or M MiB of growth without a pause, and a dead worker fails one file with a clear reason, never the next ones."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import Future
from pathlib import Path

import pytest

from app.composition import build_services
from app.jobs import JobRunner, JobService, JobStore, UploadedFile
from app.services import ingest_worker
from app.services.ingest_worker import IngestWorker, _Worker
from app.settings import Settings
from app.testing.servers import descendants

pytestmark = pytest.mark.integration


def _settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(data_dir=tmp_path / "data", ingest_worker=True, rate_limit="off", **values)


def _wait_for(condition, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Services as `rag serve` builds them, with a worker replaced after every 3 files."""
    services = build_services(
        _settings(tmp_path_factory.mktemp("worker"), ingest_worker_max_files=3, ingest_worker_max_growth_mb=0),
        serving=True,
    )
    services.warm_up()
    yield services
    services.close()


def _text(index: int) -> bytes:
    return f"Note {index}: the recycled worker indexes file number {index} about vectors and queues.".encode()


def _uploads_total() -> float:
    from prometheus_client import REGISTRY

    return sum(
        sample.value
        for metric in REGISTRY.collect()
        if metric.name == "rag_uploads"
        for sample in metric.samples
        if sample.name == "rag_uploads_total"
    )


def test_files_are_indexed_in_the_worker_and_it_is_replaced_after_max_files(served):
    uploads_before = _uploads_total()
    worker = served.ingest_worker
    first = worker.pid
    assert first not in (0, os.getpid()) and first in descendants(os.getpid())
    results = [served.ingest.ingest_bytes(_text(i), f"note-{i}.txt", collection="recycled") for i in range(4)]
    assert [r.status for r in results] == ["indexed"] * 4
    assert _uploads_total() - uploads_before == 4  # recorded here, where /metrics exports them
    _wait_for(lambda: worker.replaced >= 1)
    assert worker.pid not in (first, 0)
    _wait_for(lambda: first not in descendants(os.getpid()), 30)  # the old worker exited once its files were done
    # the server process sees what the workers wrote, and the duplicate check runs here, against the same store
    assert served.collections.info("recycled").chunks == 4
    again = served.ingest.ingest_bytes(_text(0), "note-0.txt", collection="recycled")
    assert again.status == "unchanged"  # the same source, the same bytes
    copy = served.ingest.ingest_bytes(_text(0), "copy-of-note-0.txt", collection="recycled")
    assert copy.status == "duplicate"  # another source's current content


def test_a_killed_worker_fails_one_file_with_a_reason_and_a_new_one_takes_the_next(served):
    worker = served.ingest_worker
    victim = worker.pid
    os.kill(victim, signal.SIGKILL)
    _wait_for(lambda: victim not in descendants(os.getpid()), 30)
    failed = served.ingest.ingest_bytes(_text(100), "lost.txt", collection="killed")
    assert (failed.status, failed.error_code) == ("failed", "indexing_worker_died")
    assert "died" in (failed.error or "")
    after = served.ingest.ingest_bytes(_text(101), "next.txt", collection="killed")
    assert after.status == "indexed", after
    assert worker.pid not in (victim, 0)


def test_a_job_s_files_are_indexed_in_the_worker_with_their_progress(served, tmp_path):
    settings = served.settings
    store = JobStore(settings.jobs_db)
    jobs = JobService(store, settings.jobs_dir)
    job = jobs.submit("jobbed", {}, [UploadedFile(f"job-{i}.txt", "text/plain", _text(200 + i)) for i in range(2)])
    runner = JobRunner(store, served.ingest, settings.jobs_dir)
    assert runner.run(job.id) is True
    done = jobs.get(job.id)
    assert done.state == "done", done
    assert [(f.status, f.chunks, f.chunks_done, f.chunks_total) for f in done.files] == [("indexed", 1, 1, 1)] * 2
    assert served.collections.info("jobbed").chunks == 2


class _FakeExecutor:
    """An executor whose tasks answer at once with a pid and an RSS, and which records its shutdown."""

    def __init__(self, pid: int, rss: float) -> None:
        self.pid, self.rss, self.shut = pid, rss, False

    def submit(self, function, *args):
        future: Future = Future()
        future.set_result((self.pid, self.rss) if function is ingest_worker._ready else ("result", self.rss))
        return future

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        self.shut = True


def test_growth_beyond_the_limit_replaces_the_worker_only_once_the_new_one_is_ready(tmp_path, monkeypatch):
    worker = IngestWorker(_settings(tmp_path), max_files=0, max_growth_mb=64)
    spawned: list[_FakeExecutor] = []

    def spawn() -> _Worker:
        executor = _FakeExecutor(pid=1000 + len(spawned), rss=400.0)
        spawned.append(executor)
        return _Worker(executor)  # type: ignore[arg-type]

    monkeypatch.setattr(worker, "_spawn", spawn)
    worker.start()
    assert (worker.pid, len(spawned)) == (1000, 1)
    old = spawned[0]
    old.rss = 500.0  # the first files cost memory once: the growth is counted from the size after them
    for _ in range(ingest_worker.SETTLE_FILES):
        assert worker.call(ingest_worker._ingest, b"x", "a.txt", {}) == "result"
    old.rss = 560.0  # +60 MiB: within the limit
    worker.call(ingest_worker._ingest, b"x", "a.txt", {})
    assert (worker.pid, len(spawned), worker.replaced) == (1000, 1, 0)
    old.rss = 570.0  # +70 MiB: replaced by a new worker, which was ready at once here
    worker.call(ingest_worker._ingest, b"x", "b.txt", {})
    assert (worker.pid, len(spawned), worker.replaced) == (1001, 2, 1)
    assert old.shut and not spawned[1].shut
    worker.close()
    assert spawned[1].shut


def test_a_huge_first_file_does_not_raise_the_mark(tmp_path, monkeypatch):
    """A worker that a first file took far above its size after warm-up is replaced at once (the mark is capped)."""
    worker = IngestWorker(_settings(tmp_path), max_files=0, max_growth_mb=64)
    spawned: list[_FakeExecutor] = []

    def spawn() -> _Worker:
        spawned.append(_FakeExecutor(pid=2000 + len(spawned), rss=400.0))
        return _Worker(spawned[-1])  # type: ignore[arg-type]

    monkeypatch.setattr(worker, "_spawn", spawn)
    worker.start()
    spawned[0].rss = 400.0 + ingest_worker.SETTLE_ALLOWANCE_MB + 65  # a 4.5 MB file without separators
    worker.call(ingest_worker._ingest, b"x", "big.txt", {})
    assert (worker.pid, worker.replaced) == (2001, 1)


def test_limits_are_validated(tmp_path):
    with pytest.raises(ValueError):
        IngestWorker(_settings(tmp_path), max_files=-1, max_growth_mb=0)


def test_the_worker_exits_when_its_server_is_killed(tmp_path):
    """A worker must never write on for a dead server (its restart re-runs the file): it exits within a second."""
    script = textwrap.dedent(
        """
        import os, sys, time
        from app.composition import build_services
        from app.settings import Settings

        if __name__ == "__main__":
            services = build_services(Settings(data_dir=sys.argv[1], ingest_worker=True), serving=True)
            services.warm_up()
            print(services.ingest_worker.pid, flush=True)
            time.sleep(600)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    server = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path / "data")], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert server.stdout is not None
        worker_pid = int(server.stdout.readline())
        assert worker_pid in descendants(server.pid)
    finally:
        server.kill()
        server.wait()
    _wait_for(lambda: not Path(f"/proc/{worker_pid}").exists() or _is_zombie(worker_pid), 10)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_a_files_splitter_size_reaches_the_worker(served):
    text = " ".join(f"Sentence {n} of the sized note about vectors." for n in range(40)).encode()  # ~1800 characters
    sized = served.ingest.ingest_bytes(text, "sized.txt", collection="sized", split=(200, 0))
    usual = served.ingest.ingest_bytes(text, "usual.txt", collection="usual")
    assert sized.status == usual.status == "indexed"
    assert sized.chunks > usual.chunks
    scope = {"field": "meta.collection", "operator": "==", "value": "sized"}
    assert max(len(d.content or "") for d in served.pipelines.document_store.filter_documents(scope)) <= 200
