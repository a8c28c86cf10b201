"""Fixtures of the sync tests: the sync services on SQLite and on PostgreSQL (`state_url`), a folder root of the
test's own, and a job runner that runs sync runs."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from app.jobs import JobRunner
from app.settings import Settings
from app.testing.sync import SyncRig, sync_rig


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The allowed folder root (RAG_SYNC_ROOTS) with a source folder `docs` in it."""
    (tmp_path / "root" / "docs").mkdir(parents=True)
    return tmp_path / "root"


@pytest.fixture
def rig(state_url: str | None, tmp_path: Path, root: Path) -> SyncRig:
    """The sync services on SQLite and on PostgreSQL (each test twice); folders under `root`, loopback URLs allowed."""
    settings = Settings(
        data_dir=tmp_path / "state", state_url=state_url, sync_roots=[root], sync_allow_private_urls=True
    )
    return sync_rig(settings)


@pytest.fixture
def run_jobs_for():
    """`run_jobs_for(rig)()`: run every queued job (the sync runs) as the embedded worker would, until none is left or
    `stopping` is set."""

    def of(rig: SyncRig):
        def run(stopping: threading.Event | None = None) -> JobRunner:
            runner = JobRunner(rig.jobs.store, None, rig.jobs.blobs, sync=rig.runner.run)  # type: ignore[arg-type]
            while runner.run_next(stopping=stopping):
                if stopping is not None and stopping.is_set():
                    break
            return runner

        return run

    return of


@pytest.fixture
def run_jobs(rig: SyncRig, run_jobs_for):
    """The rig's `run_jobs_for`."""
    return run_jobs_for(rig)
