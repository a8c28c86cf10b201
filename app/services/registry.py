"""The document registry: one row per (collection, document_id), claimed atomically before the document is indexed.

Two uploads of the same bytes into one collection are one document (`document_id_for`). Whoever indexes it first
*claims* its row: `claim` is one `INSERT … ON CONFLICT … DO UPDATE … WHERE … RETURNING` statement that succeeds for a
new document, a failed one, or one whose owner stopped renewing its lease (a crashed process, on any host); it fails
while the document is indexed or a live owner indexes it. Each successful claim gets a new `owner` (unique) and the
next `fence`; every later write of the holder (`renew`, `finish`, `release`) names both, so an owner that lost its
claim (its lease ran out and another took over) changes nothing. Only the holder of a claim deletes chunks of the
document: a twin that failed never removes the chunks of the one that succeeded.

Leases are measured by the database's clock (`database.now`): the server's on PostgreSQL, so hosts with skewed clocks
agree. States: `indexing` (held by `owner` until `lease_until`), `indexed`, `failed`.
"""

from __future__ import annotations

import os
import socket
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
)

_CLAIM = (
    "INSERT INTO documents (collection, document_id, state, owner, fence, lease_until, updated_at) "
    "VALUES (?, ?, 'indexing', ?, 1, ?, ?) "
    "ON CONFLICT (collection, document_id) DO UPDATE SET state = 'indexing', owner = excluded.owner, "
    "fence = documents.fence + 1, lease_until = excluded.lease_until, updated_at = excluded.updated_at "
    "WHERE documents.state = 'failed' OR (documents.state = 'indexing' AND documents.lease_until < ?)"
)
_HOLDER = "collection = ? AND document_id = ? AND owner = ? AND fence = ? AND state = 'indexing'"


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

    def claim(self, collection: str, document_id: str, *, take_indexed: bool = False) -> Claim | None:
        """Claim the document for indexing, or None while it is indexed or a live owner indexes it.

        `take_indexed`: claim an indexed document too (to remove it); a live owner's claim is never taken.
        """
        owner = f"{self._me}:{uuid.uuid4().hex[:12]}"
        sql = _CLAIM + (" OR documents.state = 'indexed'" if take_indexed else "") + " RETURNING fence"
        with self.db.transaction() as db:
            now = self._now(db)
            rows = db.execute(sql, (collection, document_id, owner, now + self.lease_seconds, now, now)).fetchall()
        return Claim(collection, document_id, owner, int(rows[0][0])) if rows else None

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

    def finish(self, claim: Claim, *, indexed: bool) -> bool:
        """Record the outcome (`indexed`, or `failed`: anyone may claim it again); False when no longer held."""
        with self.db.transaction() as db:
            now = self._now(db)
            updated = db.execute(
                f"UPDATE documents SET state = ?, lease_until = ?, updated_at = ? WHERE {_HOLDER}",
                (INDEXED if indexed else FAILED, now, now, *claim.key()),
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
