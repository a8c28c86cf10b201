"""The PostgreSQL twin of `app.sqlite.SQLiteDatabase`, behind the service's own tables when RAG_STATE_URL is set.

The stores (jobs, API keys, collections, the document registry) write their SQL once, with `?` placeholders and
`?`-bound times: `PostgresDatabase.connect()` / `transaction()` hand out a connection whose `execute` takes the same
SQL (placeholders become psycopg's `%s`) and whose rows answer both `row["name"]` and `row[0]`, like `sqlite3.Row`.

- Times are the database's: `now(db)` is the server's clock (seconds since the epoch), so hosts with skewed clocks
  agree on leases; the SQLite twin answers its `clock`.
- Each store has its own schema steps (`migrations`, append-only, PostgreSQL dialect) recorded in the table
  `ragstack_schema` under its `name`; they run inside a transaction holding an advisory lock, so replicas starting
  together migrate once and the others wait.
- Connections come from one small pool per (URL, process): a process forked or spawned later opens its own.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from app.extras import extra_required
from app.sqlite import SchemaVersionError

_POOLS: dict[tuple[str, int], Any] = {}
_POOLS_LOCK = threading.Lock()
POOL_MAX = 8  # per process and URL: API threads, auth threads, a worker's heartbeat; short statements only


class Row(tuple):
    """A result row read by position (`row[0]`) or by column name (`row["state"]`), like `sqlite3.Row`."""

    _names: dict[str, int]

    def __new__(cls, values: Sequence[Any], names: dict[str, int]) -> Row:
        row = super().__new__(cls, values)
        row._names = names
        return row

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return super().__getitem__(self._names[key])
        return super().__getitem__(key)

    def keys(self) -> list[str]:
        return list(self._names)


def _row_factory(cursor: Any) -> Any:
    names = {column.name: index for index, column in enumerate(cursor.description or ())}

    def make(values: Sequence[Any]) -> Row:
        return Row(values, names)

    return make


def to_pyformat(sql: str) -> str:
    """The store's `?` placeholders as psycopg's `%s` (a literal `%` doubled); the stores' SQL has no `?` in text."""
    return sql.replace("%", "%%").replace("?", "%s")


class PostgresConnection:
    """One pooled connection, answering the subset of `sqlite3.Connection` the stores use."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.connection.execute(to_pyformat(sql), tuple(params))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Any:
        cursor = self.connection.cursor()
        cursor.executemany(to_pyformat(sql), [tuple(row) for row in rows])
        return cursor


def _pool(url: str) -> Any:
    with extra_required("cluster", "RAG_STATE_URL"):
        from psycopg_pool import ConnectionPool
    key = (url, os.getpid())
    with _POOLS_LOCK:
        pool = _POOLS.get(key)
        if pool is None:
            pool = ConnectionPool(
                url,
                min_size=1,
                max_size=POOL_MAX,
                kwargs={"autocommit": True, "row_factory": _row_factory},
                open=True,
                name=f"ragstack-state-{os.getpid()}",
            )
            _POOLS[key] = pool
    return pool


def close_pools() -> None:
    """Close this process's pools (tests and shutdown)."""
    with _POOLS_LOCK:
        mine = [key for key in _POOLS if key[1] == os.getpid()]
        for key in mine:
            _POOLS.pop(key).close()


class PostgresDatabase:
    """A store's tables in PostgreSQL with a migrated schema; `connect()` for single statements, `transaction()` for
    several (READ COMMITTED; a read-then-write that must not race locks its rows with `FOR UPDATE`)."""

    dialect = "postgres"

    def __init__(self, url: str, *, name: str, migrations: Sequence[str], timeout: float = 30.0) -> None:
        """`name`: the store's entry in `ragstack_schema`; `migrations`: its PostgreSQL schema steps, append-only."""
        self.url = url
        self.name = name
        self.migrations = tuple(migrations)
        self.timeout = timeout
        self.migrate()

    @property
    def where(self) -> str:
        """Where the tables live, for messages (the URL without its password)."""
        from psycopg.conninfo import conninfo_to_dict

        info = conninfo_to_dict(self.url)
        return f"postgresql://{info.get('host', '')}:{info.get('port', 5432)}/{info.get('dbname', '')}"

    @contextmanager
    def connect(self) -> Iterator[PostgresConnection]:
        """A pooled connection in autocommit mode (each statement is its own transaction)."""
        with _pool(self.url).connection(timeout=self.timeout) as connection:
            yield PostgresConnection(connection)

    @contextmanager
    def transaction(self) -> Iterator[PostgresConnection]:
        """A connection inside a transaction: committed when the block ends, rolled back when it raises."""
        with _pool(self.url).connection(timeout=self.timeout) as connection, connection.transaction():
            yield PostgresConnection(connection)

    def now(self, db: PostgresConnection) -> float:
        """The database server's time (seconds since the epoch): every host's leases are measured by one clock."""
        return float(db.execute("SELECT EXTRACT(EPOCH FROM clock_timestamp())").fetchone()[0])

    @property
    def version(self) -> int:
        with self.connect() as db:
            row = db.execute("SELECT version FROM ragstack_schema WHERE name = ?", (self.name,)).fetchone()
        return int(row[0]) if row else 0

    def migrate(self) -> int:
        """Apply the pending steps in one transaction under an advisory lock (replicas starting together wait)."""
        with self.transaction() as db:
            db.execute("SELECT pg_advisory_xact_lock(hashtext('ragstack_schema'))")
            db.execute("CREATE TABLE IF NOT EXISTS ragstack_schema (name TEXT PRIMARY KEY, version INTEGER NOT NULL)")
            row = db.execute("SELECT version FROM ragstack_schema WHERE name = ?", (self.name,)).fetchone()
            current = int(row[0]) if row else 0
            if current > len(self.migrations):
                raise SchemaVersionError(
                    f"the {self.name} tables at {self.where} have schema version {current}, newer than this release "
                    f"knows ({len(self.migrations)}): they were written by a newer ragstack"
                )
            for version in range(current + 1, len(self.migrations) + 1):
                db.connection.execute(self.migrations[version - 1])
            if current != len(self.migrations):
                db.execute(
                    "INSERT INTO ragstack_schema (name, version) VALUES (?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET version = EXCLUDED.version",
                    (self.name, len(self.migrations)),
                )
        return len(self.migrations)
