"""The document registry: one row per (collection, document_id), claimed atomically before the document is indexed.

Two uploads of the same bytes into one collection are one document (`document_id_for`). Whoever indexes it first
*claims* its row: `claim` is one `INSERT … ON CONFLICT … DO UPDATE … WHERE … RETURNING` statement that succeeds for a
new document, a failed one, or one whose owner stopped renewing its lease (a crashed process, on any host); it fails
while the document is indexed or a live owner indexes it. Each successful claim gets a new `owner` (unique) and the
next `fence`; every later write of the holder (`renew`, `finish`, `release`) names both, so an owner that lost its
claim (its lease ran out and another took over) changes nothing. Only the holder of a claim deletes chunks of the
document: a twin that failed never removes the chunks of the one that succeeded.

A document is also a *source* (`source_id`, unique within its collection when set: the file name or the caller's
id) at a `version` (1, 2, ...) of a `content_hash` (`previous_hash`: the version before). A new version of a source
claims the source's existing row (`take_indexed`), so twins and crashed owners behave as for a first version; its
`document_id` stays the first version's. `finish(..., content_hash=...)` records the new version once it is written.

Leases are measured by the database's clock (`database.now`): the server's on PostgreSQL, so hosts with skewed clocks
agree. States: `indexing` (held by `owner` until `lease_until`), `indexed`, `failed`.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from haystack import logging

from app.sqlite import SQLiteDatabase
from app.state import StateDatabase, database_errors

logger = logging.getLogger(__name__)

INDEXING = "indexing"
INDEXED = "indexed"
FAILED = "failed"

# Step 2 (both backends): documents are versions of sources.
_SOURCES = """
    ALTER TABLE documents ADD COLUMN source_id TEXT;
    ALTER TABLE documents ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE documents ADD COLUMN content_hash TEXT;
    ALTER TABLE documents ADD COLUMN previous_hash TEXT;
    CREATE UNIQUE INDEX IF NOT EXISTS documents_by_source ON documents (collection, source_id)
        WHERE source_id IS NOT NULL;
    CREATE INDEX IF NOT EXISTS documents_by_content ON documents (collection, content_hash);
    """

# Append-only schema steps of documents.db (`app.sqlite`).
SQLITE_MIGRATIONS = (
    """
    CREATE TABLE IF NOT EXISTS documents (
        collection TEXT NOT NULL,
        document_id TEXT NOT NULL,
        state TEXT NOT NULL,
        owner TEXT NOT NULL,
        fence INTEGER NOT NULL,
        lease_until REAL NOT NULL,
        updated_at REAL NOT NULL,
        PRIMARY KEY (collection, document_id)
    );
    CREATE INDEX IF NOT EXISTS documents_by_id ON documents (document_id);
    """,
    _SOURCES,
)
# PostgreSQL's steps (its own list; `app.postgres`).
POSTGRES_MIGRATIONS = (
    """
    CREATE TABLE IF NOT EXISTS documents (
        collection TEXT NOT NULL,
        document_id TEXT NOT NULL,
        state TEXT NOT NULL,
        owner TEXT NOT NULL,
        fence BIGINT NOT NULL,
        lease_until DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (collection, document_id)
    );
    CREATE INDEX IF NOT EXISTS documents_by_id ON documents (document_id);
    """,
    _SOURCES,
)

_CLAIM = (
    "INSERT INTO documents (collection, document_id, state, owner, fence, lease_until, updated_at, source_id) "
    "VALUES (?, ?, 'indexing', ?, 1, ?, ?, ?) "
    "ON CONFLICT (collection, document_id) DO UPDATE SET state = 'indexing', owner = excluded.owner, "
    "source_id = COALESCE(documents.source_id, excluded.source_id), "
    "fence = documents.fence + 1, lease_until = excluded.lease_until, updated_at = excluded.updated_at "
    "WHERE documents.state = 'failed' OR (documents.state = 'indexing' AND documents.lease_until < ?)"
)
_HOLDER = "collection = ? AND document_id = ? AND owner = ? AND fence = ? AND state = 'indexing'"


class SourceTakenError(Exception):
    """Another document of the collection holds this `source_id` (a concurrent first upload of it): look it up again."""


@dataclass(frozen=True)
class SourceVersion:
    """A document's registry row as a version of its source."""

    collection: str
    document_id: str
    source_id: str | None
    version: int
    content_hash: str | None
    previous_hash: str | None
    updated_at: float
    state: str


_VERSION_COLUMNS = "collection, document_id, source_id, version, content_hash, previous_hash, updated_at, state"


def _version(row: Any) -> SourceVersion:
    return SourceVersion(
        collection=str(row["collection"]),
        document_id=str(row["document_id"]),
        source_id=row["source_id"],
        version=int(row["version"]),
        content_hash=row["content_hash"],
        previous_hash=row["previous_hash"],
        updated_at=float(row["updated_at"]),
        state=str(row["state"]),
    )


def _integrity_errors() -> tuple[type[BaseException], ...]:
    psycopg = sys.modules.get("psycopg")
    return (sqlite3.IntegrityError,) + ((psycopg.IntegrityError,) if psycopg is not None else ())


@dataclass(frozen=True)
class Claim:
    """The right to index (or remove) one document: valid while the row still names this owner and fence."""

    collection: str
    document_id: str
    owner: str
    fence: int

    @property
    def first(self) -> bool:
        """True when the row did not exist before this claim (a new document, or one indexed before the registry)."""
        return self.fence == 1

    def key(self) -> tuple[str, str, str, int]:
        return (self.collection, self.document_id, self.owner, self.fence)


class DocumentRegistry:
    """The `documents` table of the state database."""

    def __init__(self, database: Path | StateDatabase, *, lease_seconds: float = 30.0) -> None:
        """`database`: the state database (`app.state.state_database` with this module's migrations), or the path of
        a SQLite file; `lease_seconds`: how long a claim holds without renewal (the holder renews every third)."""
        if isinstance(database, Path):
            database = SQLiteDatabase(database, migrations=SQLITE_MIGRATIONS)
        self.db: StateDatabase = database
        self.lease_seconds = float(lease_seconds)
        self._me = f"{socket.gethostname()}:{os.getpid()}"

    def _now(self, db: Any) -> float:
        """The database's time (the server's clock on PostgreSQL): leases of every host are measured by it."""
        return self.db.now(db)

    def claim(
        self, collection: str, document_id: str, *, take_indexed: bool = False, source_id: str | None = None
    ) -> Claim | None:
        """Claim the document for indexing, or None while it is indexed or a live owner indexes it.

        `take_indexed`: claim an indexed document too (to remove it, or to index a new version of it); a live owner's
        claim is never taken. `source_id`: the source a new row is a version of (a row keeps the one it has).

        :raises SourceTakenError: another document of the collection holds `source_id`.
        """
        owner = f"{self._me}:{uuid.uuid4().hex[:12]}"
        sql = _CLAIM + (" OR documents.state = 'indexed'" if take_indexed else "") + " RETURNING fence"
        try:
            with self.db.transaction() as db:
                now = self._now(db)
                params = (collection, document_id, owner, now + self.lease_seconds, now, source_id, now)
                rows = db.execute(sql, params).fetchall()
        except _integrity_errors() as error:
            raise SourceTakenError(
                f"source {source_id!r} of collection {collection!r} is another document's"
            ) from error
        return Claim(collection, document_id, owner, int(rows[0][0])) if rows else None

    def source(self, collection: str, source_id: str) -> SourceVersion | None:
        """The row of the collection's document that is `source_id` (any state), or None."""
        with self.db.connect() as db:
            row = db.execute(
                f"SELECT {_VERSION_COLUMNS} FROM documents WHERE collection = ? AND source_id = ?",
                (collection, source_id),
            ).fetchone()
        return None if row is None else _version(row)

    def document(self, collection: str, document_id: str) -> SourceVersion | None:
        """The document's row, or None."""
        with self.db.connect() as db:
            row = db.execute(
                f"SELECT {_VERSION_COLUMNS} FROM documents WHERE collection = ? AND document_id = ?",
                (collection, document_id),
            ).fetchone()
        return None if row is None else _version(row)

    def adopt(self, collection: str, document_id: str, source_id: str, content_hash: str | None) -> bool:
        """Make a document indexed before sources existed the source `source_id` (its current version the content
        its chunks record); False when it has a source already or another document is that source."""
        try:
            with self.db.transaction() as db:
                updated = db.execute(
                    "UPDATE documents SET source_id = ?, content_hash = COALESCE(content_hash, ?) "
                    "WHERE collection = ? AND document_id = ? AND source_id IS NULL",
                    (source_id, content_hash, collection, document_id),
                ).rowcount
        except _integrity_errors():
            return False
        return bool(updated)

    def with_content(self, collection: str, content_hash: str) -> list[SourceVersion]:
        """The collection's documents whose current version has these bytes."""
        with self.db.connect() as db:
            rows = db.execute(
                f"SELECT {_VERSION_COLUMNS} FROM documents WHERE collection = ? AND content_hash = ?",
                (collection, content_hash),
            ).fetchall()
        return [_version(row) for row in rows]

    def versions(self, collection: str, document_ids: list[str]) -> dict[str, SourceVersion]:
        """The rows of these documents of the collection, by document id."""
        found: dict[str, SourceVersion] = {}
        for start in range(0, len(document_ids), 500):
            batch = document_ids[start : start + 500]
            marks = ", ".join("?" for _ in batch)
            with self.db.connect() as db:
                rows = db.execute(
                    f"SELECT {_VERSION_COLUMNS} FROM documents WHERE collection = ? AND document_id IN ({marks})",
                    (collection, *batch),
                ).fetchall()
            found.update((str(row["document_id"]), _version(row)) for row in rows)
        return found

    def state(self, collection: str, document_id: str) -> tuple[str, bool] | None:
        """The document's state and whether a claim on it is live (`indexing` within its lease); None: no row."""
        with self.db.connect() as db:
            now = self._now(db)
            row = db.execute(
                "SELECT state, lease_until FROM documents WHERE collection = ? AND document_id = ?",
                (collection, document_id),
            ).fetchone()
        if row is None:
            return None
        return str(row["state"]), row["state"] == INDEXING and float(row["lease_until"]) >= now

    def renew(self, claim: Claim) -> bool:
        """Extend the claim's lease; False when it is no longer held (taken over, or the row was removed)."""
        with self.db.transaction() as db:
            now = self._now(db)
            updated = db.execute(
                f"UPDATE documents SET lease_until = ?, updated_at = ? WHERE {_HOLDER}",
                (now + self.lease_seconds, now, *claim.key()),
            ).rowcount
        return bool(updated)

    def finish(
        self, claim: Claim, *, indexed: bool, content_hash: str | None = None, version: int | None = None
    ) -> bool:
        """Record the outcome (`indexed`, or `failed`: anyone may claim it again); False when no longer held.

        `content_hash` + `version`: the version just written (the row's hash becomes its `previous_hash`); without
        them the row keeps the version it had (a replacement that failed leaves the previous version current).
        """
        with self.db.transaction() as db:
            now = self._now(db)
            if content_hash is None:
                updated = db.execute(
                    f"UPDATE documents SET state = ?, lease_until = ?, updated_at = ? WHERE {_HOLDER}",
                    (INDEXED if indexed else FAILED, now, now, *claim.key()),
                ).rowcount
            else:
                updated = db.execute(
                    "UPDATE documents SET state = ?, lease_until = ?, updated_at = ?, previous_hash = content_hash, "
                    f"content_hash = ?, version = ? WHERE {_HOLDER}",
                    (INDEXED if indexed else FAILED, now, now, content_hash, int(version or 1), *claim.key()),
                ).rowcount
        return bool(updated)

    def give_up(self, claim: Claim) -> None:
        """`finish(indexed=False)` on a failure path: a database error is logged, not raised (the lease runs out)."""
        try:
            self.finish(claim, indexed=False)
        except database_errors() as error:
            logger.warning("Could not record {document} failed: {error}", document=claim.document_id, error=str(error))

    def release(self, claim: Claim) -> bool:
        """Remove the row (the document was removed); False when the claim was no longer held."""
        with self.db.connect() as db:
            removed = db.execute(f"DELETE FROM documents WHERE {_HOLDER}", claim.key()).rowcount
        return bool(removed)

    def forget_document(self, document_id: str) -> int:
        """Remove the rows of a deleted document (in any collection: the id includes its collection)."""
        with self.db.connect() as db:
            return int(db.execute("DELETE FROM documents WHERE document_id = ?", (document_id,)).rowcount)

    def forget_collection(self, collection: str) -> int:
        """Remove the rows of a dropped collection."""
        with self.db.connect() as db:
            return int(db.execute("DELETE FROM documents WHERE collection = ?", (collection,)).rowcount)

    @contextmanager
    def holding(self, claim: Claim) -> Iterator[Holding]:
        """Renew the claim every third of the lease while the block runs (in a thread of its own)."""
        holding = Holding(self, claim)
        thread = threading.Thread(target=holding.renew_until_done, name="rag-document-lease", daemon=True)
        thread.start()
        try:
            yield holding
        finally:
            holding.done.set()
            thread.join(timeout=5)


class Holding:
    """A claim being renewed; `lost` once a renewal found it taken over or removed."""

    def __init__(self, registry: DocumentRegistry, claim: Claim) -> None:
        self.registry = registry
        self.claim = claim
        self.done = threading.Event()
        self.lost = False

    def renew_until_done(self) -> None:
        while not self.done.wait(self.registry.lease_seconds / 3):
            try:
                held = self.registry.renew(self.claim)
            except database_errors() as error:  # database unreachable for a moment: try again at the next beat
                logger.warning(
                    "Could not renew the claim on {document}: {error}",
                    document=self.claim.document_id,
                    error=str(error),
                )
                continue
            if not held:
                self.lost = True
                logger.warning("Lost the claim on document {document}", document=self.claim.document_id)
                return

    def still_held(self) -> bool:
        """Renew now: True when the claim is still this holder's."""
        if self.lost:
            return False
        try:
            self.lost = not self.registry.renew(self.claim)
        except database_errors() as error:  # unknown: the holder does not remove chunks it may no longer own
            logger.warning(
                "Could not check the claim on {document}: {error}", document=self.claim.document_id, error=str(error)
            )
            return False
        return not self.lost
