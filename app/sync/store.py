"""The sources, what each source's entries looked like at their last ingest, and the runs with their per-entry
outcomes: four tables in the state database (SQLite `sources.db` in RAG_DATA_DIR, or PostgreSQL with RAG_STATE_URL).

At most one run per source at a time: `claim` is one conditional `UPDATE` that moves the source's `active_run` from
the value the caller read to the new run's id, so two processes (on any host) starting a run at once cannot both win.
An entry's outcome and its new state are written in one transaction (`record`): a run that stops between two entries
resumes after the last one recorded, never ingesting one twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from app.errors import NotFoundError
from app.state import StateDatabase
from app.sync.models import Outcome, RunEntry, RunTrigger, Source, SourceEntry, SourceKind, SyncRun

_TABLES = """
    CREATE TABLE IF NOT EXISTS sources (
        id TEXT PRIMARY KEY,
        collection TEXT NOT NULL,
        kind TEXT NOT NULL,
        location TEXT NOT NULL,
        include_globs TEXT NOT NULL,
        exclude_globs TEXT NOT NULL,
        interval_seconds INTEGER,
        access TEXT,
        enabled INTEGER NOT NULL DEFAULT 1,
        created_at {time} NOT NULL,
        updated_at {time} NOT NULL,
        last_run_at {time},
        next_run_at {time},
        active_run TEXT
    );
    CREATE INDEX IF NOT EXISTS sources_by_collection ON sources (collection, created_at);
    CREATE TABLE IF NOT EXISTS source_access (
        source_id TEXT NOT NULL,
        principal TEXT NOT NULL,
        PRIMARY KEY (source_id, principal)
    );
    CREATE INDEX IF NOT EXISTS sources_by_next_run ON sources (next_run_at);
    CREATE TABLE IF NOT EXISTS source_entries (
        source_id TEXT NOT NULL,
        entry_key TEXT NOT NULL,
        etag TEXT,
        mtime {time},
        size BIGINT,
        content_hash TEXT NOT NULL,
        document_id TEXT,
        version INTEGER NOT NULL DEFAULT 1,
        status TEXT NOT NULL,
        last_seen_run TEXT,
        PRIMARY KEY (source_id, entry_key)
    );
    CREATE TABLE IF NOT EXISTS sync_runs (
        id TEXT PRIMARY KEY,
        source_id TEXT NOT NULL,
        collection TEXT NOT NULL,
        run_trigger TEXT NOT NULL,
        state TEXT NOT NULL,
        error TEXT,
        created_at {time} NOT NULL,
        started_at {time},
        finished_at {time}
    );
    CREATE INDEX IF NOT EXISTS sync_runs_by_source ON sync_runs (source_id, created_at);
    CREATE TABLE IF NOT EXISTS sync_run_entries (
        run_id TEXT NOT NULL,
        entry_key TEXT NOT NULL,
        outcome TEXT NOT NULL,
        status TEXT,
        document_id TEXT,
        error TEXT,
        error_code TEXT,
        at {time} NOT NULL,
        PRIMARY KEY (run_id, entry_key)
    );
"""

# Append-only (released steps are never edited).
SQLITE_MIGRATIONS = (_TABLES.format(time="REAL"),)
# PostgreSQL's own steps (times in DOUBLE PRECISION).
POSTGRES_MIGRATIONS = (_TABLES.format(time="DOUBLE PRECISION"),)


def _source(row: Any) -> Source:
    location = json.loads(row["location"])
    return Source(
        id=row["id"],
        collection=row["collection"],
        kind=SourceKind(row["kind"]),
        location=location,
        include=json.loads(row["include_globs"]),
        exclude=json.loads(row["exclude_globs"]),
        interval_seconds=row["interval_seconds"],
        access=json.loads(row["access"]) if row["access"] is not None else None,
        enabled=bool(row["enabled"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        last_run_at=row["last_run_at"],
        next_run_at=row["next_run_at"],
        active_run=row["active_run"],
    )


def _entry(row: Any) -> SourceEntry:
    return SourceEntry(
        key=row["entry_key"],
        etag=row["etag"],
        mtime=row["mtime"],
        size=row["size"],
        content_hash=row["content_hash"],
        document_id=row["document_id"],
        version=row["version"],
        status=row["status"],
        last_seen_run=row["last_seen_run"],
    )


def _run_entry(row: Any) -> RunEntry:
    return RunEntry(
        key=row["entry_key"],
        outcome=Outcome(row["outcome"]),
        status=row["status"],
        document_id=row["document_id"],
        error=row["error"],
        error_code=row["error_code"],
        at=row["at"],
    )


# Columns a PATCH may set, with how each is stored.
_EDITABLE: dict[str, Callable[[Any], Any]] = {
    "location": json.dumps,
    "include": json.dumps,
    "exclude": json.dumps,
    "interval_seconds": lambda v: v,
    "access": lambda v: json.dumps(v) if v is not None else None,
    "enabled": int,
    "next_run_at": lambda v: v,
}
_COLUMN = {"include": "include_globs", "exclude": "exclude_globs"}


def _set_access(db: Any, source_id: str, access: list[str] | None) -> None:
    """Inside a transaction: the source's principals, one row each (what the listing filters on)."""
    db.execute("DELETE FROM source_access WHERE source_id = ?", (source_id,))
    for principal in sorted(set(access or [])):
        db.execute("INSERT INTO source_access (source_id, principal) VALUES (?, ?)", (source_id, principal))


class SourceStore:
    """The sync tables on a `StateDatabase`; one short connection per operation, any thread, process or host."""

    def __init__(self, database: StateDatabase) -> None:
        self.db = database

    def now(self) -> float:
        with self.db.connect() as db:
            return self._now(db)

    def _now(self, db: Any) -> float:
        """The database's time (SQLite: this host's clock; PostgreSQL: the server's)."""
        return self.db.now(db)

    # -- sources

    def create(self, source: Source) -> Source:
        """Record a new source (its `created_at`/`updated_at` are the database's time)."""
        with self.db.transaction() as db:
            now = self._now(db)
            db.execute(
                "INSERT INTO sources (id, collection, kind, location, include_globs, exclude_globs, interval_seconds, "
                "access, enabled, created_at, updated_at, next_run_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    source.id,
                    source.collection,
                    SourceKind(source.kind),
                    json.dumps(source.location),
                    json.dumps(source.include),
                    json.dumps(source.exclude),
                    source.interval_seconds,
                    json.dumps(source.access) if source.access is not None else None,
                    int(source.enabled),
                    now,
                    now,
                    now if source.interval_seconds is not None else None,  # a scheduled source runs first at once
                ),
            )
            _set_access(db, source.id, source.access)
        return self.get(source.id)

    def get(self, source_id: str) -> Source:
        """The source; 404 when unknown."""
        with self.db.connect() as db:
            row = db.execute("SELECT * FROM sources WHERE id = ?", (source_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"source {source_id!r} does not exist")
        return _source(row)

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
        """Oldest first, optionally of one collection (or only those `within`, none of those `excluding`: a tenant
        boundary), and only those whose documents
        `principals` may read (a source without access list, or one naming one of them; None: every source); and the
        total (counted with the same filter, in the query)."""
        where: list[str] = []
        params: list[Any] = []
        if principals is not None:
            named = f"a.principal IN ({', '.join('?' * len(principals))})" if principals else "FALSE"
            where.append(
                "(NOT EXISTS (SELECT 1 FROM source_access a WHERE a.source_id = sources.id) OR EXISTS "
                f"(SELECT 1 FROM source_access a WHERE a.source_id = sources.id AND {named}))"
            )
            params.extend(sorted(principals))
        if collection is not None:
            where.append("collection = ?")
            params.append(collection)
        if within is not None:
            where.append(f"collection IN ({', '.join('?' * len(within))})" if within else "FALSE")
            params.extend(sorted(within))
        if excluding:
            where.append(f"collection NOT IN ({', '.join('?' * len(excluding))})")
            params.extend(sorted(excluding))
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        with self.db.connect() as db:
            total = int(db.execute(f"SELECT COUNT(*) FROM sources {clause}", params).fetchone()[0])
            rows = db.execute(
                f"SELECT * FROM sources {clause} ORDER BY created_at, id LIMIT ? OFFSET ?", [*params, limit, offset]
            ).fetchall()
        return [_source(row) for row in rows], total

    def update(self, source_id: str, **values: Any) -> Source:
        """Set some of `location`, `include`, `exclude`, `interval_seconds`, `access`, `enabled`, `next_run_at`."""
        unknown = set(values) - set(_EDITABLE)
        if unknown:
            raise ValueError(f"not editable: {sorted(unknown)}")
        if values:
            columns = ", ".join(f"{_COLUMN.get(name, name)} = ?" for name in values)
            params = [_EDITABLE[name](value) for name, value in values.items()]
            with self.db.transaction() as db:
                now = self._now(db)
                updated = db.execute(
                    f"UPDATE sources SET {columns}, updated_at = ? WHERE id = ?", (*params, now, source_id)
                ).rowcount
                if updated and "access" in values:
                    _set_access(db, source_id, values["access"])
            if not updated:
                raise NotFoundError(f"source {source_id!r} does not exist")
        return self.get(source_id)

    def delete(self, source_id: str) -> None:
        """Forget the source, its entries and its run history."""
        with self.db.transaction() as db:
            runs = [r["id"] for r in db.execute("SELECT id FROM sync_runs WHERE source_id = ?", (source_id,))]
            for run_id in runs:
                db.execute("DELETE FROM sync_run_entries WHERE run_id = ?", (run_id,))
            db.execute("DELETE FROM sync_runs WHERE source_id = ?", (source_id,))
            db.execute("DELETE FROM source_entries WHERE source_id = ?", (source_id,))
            db.execute("DELETE FROM source_access WHERE source_id = ?", (source_id,))
            db.execute("DELETE FROM sources WHERE id = ?", (source_id,))

    def due(self) -> list[Source]:
        """The enabled scheduled sources whose next run is due (database time), soonest first."""
        with self.db.connect() as db:
            now = self._now(db)
            rows = db.execute(
                "SELECT * FROM sources WHERE enabled = 1 AND interval_seconds IS NOT NULL AND next_run_at <= ? "
                "ORDER BY next_run_at, id",
                (now,),
            ).fetchall()
        return [_source(row) for row in rows]

    # -- the one-run-at-a-time claim

    def claim(self, source_id: str, run_id: str, *, expected: str | None) -> bool:
        """Make `run_id` the source's active run, only while its active run is still `expected` (what the caller read
        and found finished, or None); the next scheduled run moves on by the interval. False: another run won."""
        with self.db.transaction() as db:
            now = self._now(db)
            claimed = db.execute(
                "UPDATE sources SET active_run = ?, last_run_at = ?, next_run_at = CASE WHEN interval_seconds IS NULL "
                "THEN NULL ELSE ? + interval_seconds END WHERE id = ? AND "
                + ("active_run IS NULL" if expected is None else "active_run = ?"),
                (run_id, now, now, source_id, *(() if expected is None else (expected,))),
            ).rowcount
        return claimed == 1

    def release(self, source_id: str, run_id: str) -> None:
        """The run ended: the source is free for the next one (only while `run_id` still holds it)."""
        with self.db.connect() as db:
            db.execute("UPDATE sources SET active_run = NULL WHERE id = ? AND active_run = ?", (source_id, run_id))

    # -- entries

    def entries(self, source_id: str) -> dict[str, SourceEntry]:
        """The source's entries as last ingested, by key."""
        with self.db.connect() as db:
            rows = db.execute("SELECT * FROM source_entries WHERE source_id = ?", (source_id,)).fetchall()
        return {row["entry_key"]: _entry(row) for row in rows}

    def record(self, run_id: str, source_id: str, outcome: RunEntry, entry: SourceEntry | None, *, drop: bool) -> None:
        """One transaction: the entry's outcome in the run, and its new state (`entry`), or its removal (`drop`);
        neither for a failure (the previous state stays, so the next run tries again)."""
        with self.db.transaction() as db:
            now = self._now(db)
            db.execute(
                "INSERT INTO sync_run_entries (run_id, entry_key, outcome, status, document_id, error, error_code, at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, entry_key) DO UPDATE SET "
                "outcome = excluded.outcome, status = excluded.status, document_id = excluded.document_id, "
                "error = excluded.error, error_code = excluded.error_code, at = excluded.at",
                (
                    run_id,
                    outcome.key,
                    Outcome(outcome.outcome),
                    outcome.status,
                    outcome.document_id,
                    outcome.error,
                    outcome.error_code,
                    now,
                ),
            )
            if drop:
                db.execute("DELETE FROM source_entries WHERE source_id = ? AND entry_key = ?", (source_id, outcome.key))
            elif entry is not None:
                db.execute(
                    "INSERT INTO source_entries (source_id, entry_key, etag, mtime, size, content_hash, document_id, "
                    "version, status, last_seen_run) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (source_id, entry_key) DO UPDATE SET etag = excluded.etag, mtime = excluded.mtime, "
                    "size = excluded.size, content_hash = excluded.content_hash, document_id = excluded.document_id, "
                    "version = excluded.version, status = excluded.status, last_seen_run = excluded.last_seen_run",
                    (
                        source_id,
                        entry.key,
                        entry.etag,
                        entry.mtime,
                        entry.size,
                        entry.content_hash,
                        entry.document_id,
                        entry.version,
                        entry.status,
                        run_id,
                    ),
                )

    # -- runs

    def create_run(self, run_id: str, source: Source, trigger: RunTrigger) -> SyncRun:
        with self.db.connect() as db:
            db.execute(
                "INSERT INTO sync_runs (id, source_id, collection, run_trigger, state, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, source.id, source.collection, RunTrigger(trigger), "queued", self._now(db)),
            )
        return self.run(run_id)

    def start_run(self, run_id: str) -> None:
        with self.db.connect() as db:
            db.execute(
                "UPDATE sync_runs SET state = ?, started_at = COALESCE(started_at, ?), finished_at = NULL, "
                "error = NULL WHERE id = ?",
                ("running", self._now(db), run_id),
            )

    def finish_run(self, run_id: str, state: str, error: str | None = None) -> None:
        with self.db.connect() as db:
            db.execute(
                "UPDATE sync_runs SET state = ?, error = ?, finished_at = ? WHERE id = ?",
                (state, error, self._now(db), run_id),
            )

    def run(self, run_id: str) -> SyncRun:
        """The run with its counts; 404 when unknown."""
        with self.db.connect() as db:
            row = db.execute("SELECT * FROM sync_runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"sync run {run_id!r} does not exist")
            return self._run(db, row)

    def _run(self, db: Any, row: Any) -> SyncRun:
        counts = {outcome.value: 0 for outcome in Outcome}
        for count in db.execute(
            "SELECT outcome, COUNT(*) AS n FROM sync_run_entries WHERE run_id = ? GROUP BY outcome", (row["id"],)
        ):
            counts[count["outcome"]] = int(count["n"])
        return SyncRun(
            id=row["id"],
            source_id=row["source_id"],
            collection=row["collection"],
            trigger=RunTrigger(row["run_trigger"]),
            state=row["state"],
            error=row["error"],
            created_at=row["created_at"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            counts=counts,
        )

    def runs(self, source_id: str, *, offset: int = 0, limit: int = 20) -> tuple[list[SyncRun], int]:
        """A source's runs, newest first; and the total."""
        with self.db.connect() as db:
            total = int(db.execute("SELECT COUNT(*) FROM sync_runs WHERE source_id = ?", (source_id,)).fetchone()[0])
            rows = db.execute(
                "SELECT * FROM sync_runs WHERE source_id = ? ORDER BY created_at DESC, id LIMIT ? OFFSET ?",
                (source_id, limit, offset),
            ).fetchall()
            return [self._run(db, row) for row in rows], total

    def run_entries(self, run_id: str, *, offset: int = 0, limit: int = 1000) -> list[RunEntry]:
        """A run's per-entry outcomes, by key."""
        with self.db.connect() as db:
            rows = db.execute(
                "SELECT * FROM sync_run_entries WHERE run_id = ? ORDER BY entry_key LIMIT ? OFFSET ?",
                (run_id, limit, offset),
            ).fetchall()
        return [_run_entry(row) for row in rows]

    def done_keys(self, run_id: str) -> set[str]:
        """The entries a run already finished (any outcome but `failed`: a retry tries those again)."""
        with self.db.connect() as db:
            rows = db.execute(
                "SELECT entry_key FROM sync_run_entries WHERE run_id = ? AND outcome != ?", (run_id, Outcome.FAILED)
            ).fetchall()
        return {row["entry_key"] for row in rows}
