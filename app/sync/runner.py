"""Running a sync: list the source, compare each entry with what its last ingest recorded, ingest what changed,
remove what disappeared, and record every entry's outcome.

The comparison is cheap first: the listed metadata (ETag and size for S3, mtime and size for a folder) equal to the
recorded one means `unchanged` without a download; a URL is read with a conditional GET (304: unchanged). Otherwise the
content is read and hashed: the same hash as recorded is `unchanged` too (its new metadata is recorded). A changed
entry is ingested with `source_id` = its key (so the new content replaces the document's previous version), with the
source's `access`. Entries recorded before but no longer listed are removed (`remove_source`), only after a complete
listing: a listing that fails removes nothing.

A run is one job (`app.jobs`, one "file" of content type `SYNC_CONTENT_TYPE`): the job worker's lease, heartbeat,
cancellation, retry and resume apply. Each entry's outcome and new state are recorded in one transaction, and a run
that is run again (its worker died, it was stopped, or it is retried) skips the entries it has already recorded (failed
ones are tried again): nothing is ingested twice.

The ingest service is reached through the narrow `SyncIngest` protocol (`ingest_adapter` makes one from
`IngestService`); tests use `app.testing.sync.FakeSyncIngest`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from haystack import logging

from app.errors import RagError
from app.sync.listing import SyncLimits, lister
from app.sync.models import Listed, Outcome, RunEntry, Source, SourceEntry, SourceKind
from app.sync.store import SourceStore

if TYPE_CHECKING:
    from app.services.ingest import IngestService

logger = logging.getLogger(__name__)

# The content type of a sync run's one job "file" (the job runner hands such a file to the sync runner).
SYNC_CONTENT_TYPE = "application/vnd.ragstack.sync-run"


@dataclass
class IngestOutcome:
    """What ingesting one entry did (the fields of `IngestResult` a run records)."""

    status: str  # indexed, updated, unchanged, duplicate, failed
    document_id: str | None = None
    version: int = 1
    error: str | None = None
    error_code: str | None = None


class SyncIngest(Protocol):
    """What a run needs from the ingest service, for one collection."""

    def ingest(
        self, data: bytes, name: str, *, source_id: str, access: list[str] | None, content_type: str | None
    ) -> IngestOutcome:
        """Ingest `data` as the document `source_id` (a new version when it exists)."""
        ...

    def remove(self, source_id: str) -> int:
        """Remove the document `source_id` (its chunks and registry row); how many chunks went."""
        ...


def ingest_adapter(ingest: IngestService, collection: str) -> SyncIngest:
    """`IngestService` (or `WorkerIngestService`) as a `SyncIngest` of `collection`: `ingest_bytes(...,
    source_id=..., access=...)` and `remove_source(collection, source_id)` of the versioned documents."""
    return _IngestServiceAdapter(ingest, collection)


class _IngestServiceAdapter:
    def __init__(self, ingest: IngestService, collection: str) -> None:
        self.service, self.collection = ingest, collection

    def ingest(
        self, data: bytes, name: str, *, source_id: str, access: list[str] | None, content_type: str | None
    ) -> IngestOutcome:
        result = self.service.ingest_bytes(
            data, name, collection=self.collection, content_type=content_type, source_id=source_id, access=access
        )
        return IngestOutcome(
            status=str(result.status),
            document_id=result.document_id or None,
            version=result.version or 1,
            error=result.error,
            error_code=result.error_code,
        )

    def remove(self, source_id: str) -> int:
        return int(self.service.remove_source(self.collection, source_id))


StopCheck = Callable[[], BaseException | None]
Progress = Callable[[int, int], object]


def _same_metadata(previous: SourceEntry | None, listed: Listed) -> bool:
    """True when the listing says the entry has not changed since its last ingest (no download needed)."""
    if previous is None:
        return False
    if listed.etag is not None and previous.etag is not None:
        return listed.etag == previous.etag and listed.size == previous.size
    if listed.mtime is not None and previous.mtime is not None:
        return listed.mtime == previous.mtime and listed.size == previous.size
    return False


def entry_name(source: Source, key: str) -> str:
    """The file name an entry is ingested as (its content type is guessed from it)."""
    if source.kind == SourceKind.URLS:
        name = PurePosixPath(urlsplit(key).path).name
        return name or "index.html"
    return PurePosixPath(key).name or key


class SyncRunner:
    """Runs a source's sync (one run = one job): `run(run_id, ...)` is what the job worker calls."""

    def __init__(
        self,
        store: SourceStore,
        ingest_for: Callable[[str], SyncIngest],
        limits: SyncLimits,
        *,
        run_finished: Callable[[str], bool] = lambda _run_id: True,
    ) -> None:
        """`ingest_for(collection)`: the ingest of a collection; `run_finished(run_id)`: whether a run's job has
        ended (a retried run may take the source's claim back only from a finished run)."""
        self.store, self.ingest_for, self.limits, self.run_finished = store, ingest_for, limits, run_finished

    def run(
        self, run_id: str, *, should_stop: StopCheck = lambda: None, progress: Progress = lambda d, t: None
    ) -> str | None:
        """Run (or resume) the run `run_id` to its end: None when it ran through, else why the run as a whole failed
        (its entries' own failures are in its history). `should_stop()` is asked before each entry: an exception it
        returns is raised (the run stops there and resumes later)."""
        run = self.store.run(run_id)
        source = self.store.get(run.source_id)
        if source.active_run != run_id:  # a retried run: the claim is its again only once the other run has ended
            other = source.active_run
            refused = None
            if other is not None and not self.run_finished(other):
                refused = "another run of the source is queued or running"
            elif not self.store.claim(source.id, run_id, expected=other):
                refused = "another run of the source started meanwhile"
            if refused is not None:
                self.store.finish_run(run_id, "failed", refused)
                return refused
        self.store.start_run(run_id)
        ended = False
        error: str | None = None
        try:
            error = self._run(run_id, source, should_stop, progress)
            ended = True
        finally:
            if not ended:  # stopped (cancelled, worker stopping, lease lost) or crashed: resumed or retried later
                self.store.finish_run(run_id, "interrupted")
        self.store.finish_run(run_id, "failed" if error else "done", error)
        self.store.release(source.id, run_id)
        return error

    def _run(self, run_id: str, source: Source, should_stop: StopCheck, progress: Progress) -> str | None:
        try:
            reader = lister(source, self.limits)
            listed = list(reader.entries())
        except RagError as error:
            logger.warning("Sync {source}: the listing failed: {error}", source=source.id, error=error.message)
            return f"the source could not be listed: {error.message}"
        previous = self.store.entries(source.id)
        done = self.store.done_keys(run_id)
        seen = {entry.key for entry in listed}
        gone = sorted(set(previous) - seen)
        total = len(listed) + len(gone)
        ingest = self.ingest_for(source.collection)
        finished = 0
        for entry in listed:
            stop = should_stop()
            if stop is not None:
                raise stop
            if entry.key not in done:
                self._sync_entry(run_id, source, entry, previous.get(entry.key), reader, ingest)
            finished += 1
            progress(finished, total)
        for key in gone:
            stop = should_stop()
            if stop is not None:
                raise stop
            if key not in done:
                self._remove_entry(run_id, source, key, ingest)
            finished += 1
            progress(finished, total)
        logger.info("Sync {source} run {run}: {entries} entries", source=source.id, run=run_id, entries=total)
        return None

    def _sync_entry(
        self, run_id: str, source: Source, listed: Listed, previous: SourceEntry | None, reader: Any, ingest: SyncIngest
    ) -> None:
        def fail(error: str, code: str) -> None:
            self.store.record(
                run_id, source.id, RunEntry(listed.key, Outcome.FAILED, error=error, error_code=code), None, drop=False
            )

        if _same_metadata(previous, listed):
            assert previous is not None
            self.store.record(
                run_id,
                source.id,
                RunEntry(listed.key, Outcome.UNCHANGED, document_id=previous.document_id),
                _seen(previous, listed),
                drop=False,
            )
            return
        try:
            fetched = reader.read(listed, previous)
        except RagError as error:
            fail(error.message, error.code)
            return
        except OSError as error:
            fail(f"the entry cannot be read ({error.strerror or type(error).__name__})", "unreadable")
            return
        if fetched is None:  # the server says: not modified
            assert previous is not None
            self.store.record(
                run_id,
                source.id,
                RunEntry(listed.key, Outcome.UNCHANGED, document_id=previous.document_id),
                _seen(previous, listed),
                drop=False,
            )
            return
        content_hash = hashlib.sha256(fetched.data).hexdigest()
        state = SourceEntry(
            key=listed.key,
            etag=fetched.etag if fetched.etag is not None else listed.etag,
            mtime=fetched.mtime if fetched.mtime is not None else listed.mtime,
            size=listed.size if listed.size is not None else len(fetched.data),
            content_hash=content_hash,
            document_id=previous.document_id if previous is not None else None,
            version=previous.version if previous is not None else 1,
            status=previous.status if previous is not None else "indexed",
            last_seen_run=run_id,
        )
        if previous is not None and previous.content_hash == content_hash:
            self.store.record(
                run_id,
                source.id,
                RunEntry(listed.key, Outcome.UNCHANGED, document_id=previous.document_id),
                state,
                drop=False,
            )
            return
        try:
            result = ingest.ingest(
                fetched.data,
                entry_name(source, listed.key),
                source_id=listed.key,
                access=source.access,
                content_type=fetched.content_type,
            )
        except RagError as error:  # invalid input, the store or a remote embedder down: this entry fails
            fail(error.message, error.code)
            return
        if result.status == "failed":
            fail(result.error or "the ingest failed", result.error_code or "failed")
            return
        state.document_id, state.version, state.status = result.document_id, result.version, result.status
        outcome = Outcome.ADDED if previous is None else Outcome.UPDATED
        self.store.record(
            run_id,
            source.id,
            RunEntry(listed.key, outcome, status=result.status, document_id=result.document_id),
            state,
            drop=False,
        )

    def _remove_entry(self, run_id: str, source: Source, key: str, ingest: SyncIngest) -> None:
        try:
            ingest.remove(key)
        except RagError as error:
            self.store.record(
                run_id,
                source.id,
                RunEntry(key, Outcome.FAILED, error=error.message, error_code=error.code),
                None,
                drop=False,
            )
            return
        self.store.record(run_id, source.id, RunEntry(key, Outcome.REMOVED), None, drop=True)


def _seen(previous: SourceEntry, listed: Listed) -> SourceEntry:
    """The recorded state of an unchanged entry, with the metadata of this listing."""
    return SourceEntry(
        key=previous.key,
        etag=listed.etag if listed.etag is not None else previous.etag,
        mtime=listed.mtime if listed.mtime is not None else previous.mtime,
        size=listed.size if listed.size is not None else previous.size,
        content_hash=previous.content_hash,
        document_id=previous.document_id,
        version=previous.version,
        status=previous.status,
        last_seen_run=previous.last_seen_run,
    )
