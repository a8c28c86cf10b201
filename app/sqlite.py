"""The one SQLite helper behind the service's own tables (jobs, API keys, collections).

Every store opens its file through `SQLiteDatabase`: WAL journal, a busy timeout (writers of other processes are
waited for, not failed), `sqlite3.Row` rows, autocommit statements plus an explicit `transaction()` (BEGIN IMMEDIATE:
the write lock is taken up front, so read-then-write sequences are serialized across processes), and a versioned
schema. The schema is an ordered list of migration scripts; `PRAGMA user_version` records how many have run. A file
of an older release is brought up to date when it is opened; a file written by a newer release is refused.

One short connection per operation: safe from any thread and any process sharing the data directory.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path


class SchemaVersionError(RuntimeError):
    """The database was written by a newer release (more migrations than this code knows)."""


def statements(script: str) -> list[str]:
    """The complete SQL statements of a script, in order (`executescript` would commit an open transaction)."""
    *parts, tail = script.split(";")  # every `;` may end a statement, unless it is inside a string or a trigger
    found: list[str] = []
    pending = ""
    for part in parts:
        pending += part + ";"
        if sqlite3.complete_statement(pending):
            found.append(pending.strip())
            pending = ""
    pending += tail
    if pending.strip():
        raise ValueError(f"incomplete SQL statement in a migration: {pending.strip()[:80]!r}")
    return found


class SQLiteDatabase:
    """A SQLite file with a migrated schema; `connect()` for single statements, `transaction()` for several."""

    dialect = "sqlite"

    def __init__(
        self,
        path: Path,
        *,
        migrations: Sequence[str],
        timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Open (creating) the file at `path` and apply the `migrations` it has not seen yet.

        `migrations[0]` creates the first schema; each later script moves the schema one version on. Scripts are
        append-only: a released step is never edited, a change is a new step.
        """
        self.path = path
        self.migrations = tuple(migrations)
        self.timeout = timeout
        self.clock = clock
        path.parent.mkdir(parents=True, exist_ok=True)
        with self.connect() as db:
            db.execute("PRAGMA journal_mode=WAL")  # persistent in the file; cannot change inside a transaction
        self.migrate()

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A short-lived connection in autocommit mode (each statement is its own transaction)."""
        db = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA synchronous=FULL")
        try:
            yield db
        finally:
            db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A connection inside BEGIN IMMEDIATE: committed when the block ends, rolled back when it raises."""
        with self.connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def now(self, db: sqlite3.Connection) -> float:
        """The time leases and timestamps are taken from: this host's `clock` (one host shares one clock)."""
        return self.clock()

    @property
    def version(self) -> int:
        """How many migrations the file has seen (`PRAGMA user_version`)."""
        with self.connect() as db:
            return int(db.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self) -> int:
        """Apply the pending migrations in one transaction (concurrent openers wait, then find nothing to do)."""
        with self.transaction() as db:
            current = int(db.execute("PRAGMA user_version").fetchone()[0])
            if current > len(self.migrations):
                raise SchemaVersionError(
                    f"{self.path} has schema version {current}, newer than this release knows "
                    f"({len(self.migrations)}): it was written by a newer ragstack"
                )
            for version, script in enumerate(self.migrations[current:], start=current + 1):
                for statement in statements(script):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {version:d}")
        return len(self.migrations)
