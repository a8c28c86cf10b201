"""What the API and `rag sync` do with sources: register, read, change and delete them, start runs (each one a job),
enqueue the runs of the sources that are due, and read the run history."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from haystack import logging

from app.errors import ConflictError, InvalidInputError, NotFoundError, RagError
from app.jobs import Job, JobService
from app.state import database_errors
from app.sync.listing import SyncLimits, check_location
from app.sync.models import RunEntry, RunTrigger, Source, SourceKind, SyncRun, check_principals, new_source_id
from app.sync.runner import SYNC_CONTENT_TYPE, SyncIngest
from app.sync.store import SourceStore

logger = logging.getLogger(__name__)

MIN_INTERVAL_SECONDS = 60
MAX_GLOBS = 50


def readable_by(source: Source, principals: frozenset[str] | None) -> bool:
    """True when a caller with `principals` may read the source's documents (None or `*`: every document), and so
    see the source, its runs and their entries; anyone else is answered as if it did not exist."""
    if principals is None or "*" in principals or not source.access:
        return True
    return bool(principals & set(source.access))


def _check_globs(globs: list[str]) -> list[str]:
    if len(globs) > MAX_GLOBS:
        raise InvalidInputError(f"at most {MAX_GLOBS} globs")
    for glob in globs:
        if not glob or len(glob) > 512 or any(ord(c) < 32 for c in glob):
            raise InvalidInputError("a glob is 1-512 characters without control characters")
    return globs


def _check_interval(interval: int | None) -> int | None:
    if interval is not None and interval < MIN_INTERVAL_SECONDS:
        raise InvalidInputError(f"the interval is at least {MIN_INTERVAL_SECONDS} seconds")
    return interval


class SourceService:
    """Sources and their runs over a `SourceStore`; a run is a job of `jobs` (one "file" the job worker hands to the
    sync runner)."""

    def __init__(self, store: SourceStore, jobs: JobService, limits: SyncLimits) -> None:
        self.store, self.jobs, self.limits = store, jobs, limits

    # -- sources

    def create(
        self,
        *,
        collection: str,
        kind: SourceKind,
        location: str | list[str],
        include: list[str] | None = None,
        exclude: list[str] | None = None,
        interval_seconds: int | None = None,
        access: list[str] | None = None,
        enabled: bool = True,
    ) -> Source:
        """Register a source (its location checked against the limits: `InvalidInputError` when refused)."""
        kind = SourceKind(kind)
        source = Source(
            id=new_source_id(),
            collection=collection,
            kind=kind,
            location=check_location(kind, location, self.limits),
            include=_check_globs(include or []),
            exclude=_check_globs(exclude or []),
            interval_seconds=_check_interval(interval_seconds),
            access=check_principals(access),
            enabled=enabled,
            created_at=0.0,
            updated_at=0.0,
        )
        created = self.store.create(source)
        logger.info(
            "Source {source} registered: {kind} into {collection}", source=created.id, kind=kind, collection=collection
        )
        return created

    def get(self, source_id: str) -> Source:
        return self.store.get(source_id)

    def sources(
        self,
        *,
        collection: str | None = None,
        within: frozenset[str] | None = None,
        excluding: frozenset[str] | None = None,
        principals: frozenset[str] | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> tuple[list[Source], int]:
        return self.store.sources(
            collection=collection,
            within=within,
            excluding=excluding,
            principals=principals,
            offset=offset,
            limit=limit,
        )

    def update(self, source_id: str, **values: Any) -> Source:
        """Change some of `location`, `include`, `exclude`, `interval_seconds` (None: manual), `access`, `enabled`."""
        source = self.store.get(source_id)
        if "location" in values:
            values["location"] = check_location(source.kind, values["location"], self.limits)
        for name in ("include", "exclude"):
            if name in values:
                values[name] = _check_globs(values[name] or [])
        if "access" in values:
            values["access"] = check_principals(values["access"])
        if "interval_seconds" in values:
            values["interval_seconds"] = _check_interval(values["interval_seconds"])
            interval = values["interval_seconds"]
            values["next_run_at"] = None if interval is None else (source.last_run_at or self.store.now()) + interval
        return self.store.update(source_id, **values)

    def delete(self, source_id: str, *, remove_documents: bool = False, ingest: SyncIngest | None = None) -> int:
        """Forget a source (its unfinished run cancelled first); with `remove_documents`, its documents go too (through
        `ingest`): how many documents were removed."""
        source = self.store.get(source_id)
        if source.active_run is not None and not self.run_finished(source.active_run):
            try:
                self.jobs.cancel(source.active_run)
            except (ConflictError, NotFoundError):
                pass  # it finished meanwhile
        removed = 0
        if remove_documents:
            if ingest is None:
                raise ValueError("remove_documents needs the ingest service")
            for key in sorted(self.store.entries(source_id)):
                ingest.remove(key)
                removed += 1
        self.store.delete(source_id)
        logger.info("Source {source} deleted ({removed} documents removed)", source=source_id, removed=removed)
        return removed

    # -- runs

    def run_finished(self, run_id: str) -> bool:
        """True when the run's job has ended (or no longer exists)."""
        try:
            return self.jobs.get(run_id).state.finished
        except NotFoundError:
            return True

    def start_run(self, source_id: str, *, trigger: RunTrigger = RunTrigger.MANUAL) -> SyncRun:
        """Queue a run of the source as a job; 409 while another of its runs is queued or running (one at a time,
        across every process and host: a claim in the database)."""
        source = self.store.get(source_id)
        active = source.active_run
        if active is not None and not self.run_finished(active):
            raise ConflictError(
                f"a run of source {source_id!r} is already queued or running", detail={"run_id": active}
            )
        run_id = uuid.uuid4().hex
        if not self.store.claim(source_id, run_id, expected=active):
            raise ConflictError(f"a run of source {source_id!r} was started meanwhile")
        run = self.store.create_run(run_id, source, trigger)
        spec = {
            "filename": f"sync {source.id}",
            "content_type": SYNC_CONTENT_TYPE,
            "size": 0,
            "document_id": "",
            "pages_total": 0,
            "spooled": True,  # nothing is spooled, but the job worker runs it (and a retry queues it again)
            "tags": {},
        }
        # the collection's generation, as an upload's job records it: a drop of the collection cancels the run
        generation = self.jobs.generation_of(source.collection) if self.jobs.generation_of is not None else 0
        self.jobs.store.create(run_id, source.collection, {}, [spec], generation=generation)
        self.jobs.notify(run_id)
        logger.info("Source {source}: run {run} queued ({trigger})", source=source.id, run=run_id, trigger=trigger)
        return run

    def enqueue_due(self) -> list[str]:
        """Queue a run of every enabled scheduled source whose next run is due (skipping those with a run still
        going); the run ids. Called by the API's scheduler and by `rag sync --due`."""
        started: list[str] = []
        for source in self.store.due():
            try:
                started.append(self.start_run(source.id, trigger=RunTrigger.SCHEDULE).id)
            except (ConflictError, NotFoundError):
                continue  # running already (or deleted meanwhile): the next sweep looks again
        return started

    def run(self, run_id: str) -> SyncRun:
        return self._with_job_state(self.store.run(run_id))

    def runs(self, source_id: str, *, offset: int = 0, limit: int = 20) -> tuple[list[SyncRun], int]:
        self.store.get(source_id)
        runs, total = self.store.runs(source_id, offset=offset, limit=limit)
        return [self._with_job_state(run) for run in runs], total

    def run_entries(self, run_id: str, *, offset: int = 0, limit: int = 1000) -> list[RunEntry]:
        return self.store.run_entries(run_id, offset=offset, limit=limit)

    def job(self, run_id: str) -> Job | None:
        try:
            return self.jobs.get(run_id)
        except NotFoundError:
            return None

    def _with_job_state(self, run: SyncRun) -> SyncRun:
        """The run with its job's state (queued, parsing, done, failed, cancelled) while the job is kept."""
        job = self.job(run.id)
        if job is not None:
            run.state = job.state.value
            errors = [f.error for f in job.files if f.error]
            if not run.error and (errors or job.error):
                run.error = errors[0] if errors else job.error
        return run


def enqueue_due_once(sources: SourceService) -> list[str]:
    """One pass of the scheduler; a failure (the state database or the job table unreachable) is logged and the next
    pass tries again."""
    failures: tuple[type[BaseException], ...] = (RagError, *database_errors())
    try:
        return sources.enqueue_due()
    except failures:
        logger.exception("Sync scheduler: queuing the due sources failed; tried again at the next pass")
        return []


async def enqueue_due_forever(sources: SourceService, every: float) -> None:
    """The API process's sync scheduler (an asyncio task): queue the runs of the sources that are due, every `every`
    seconds. Several API replicas may run it: the one-run-per-source claim lets one of them queue each run."""
    while True:
        await asyncio.to_thread(enqueue_due_once, sources)
        await asyncio.sleep(every)
