"""Where the service's own tables live: SQLite files under RAG_DATA_DIR (one host), or PostgreSQL (RAG_STATE_URL).

Every store (jobs, API keys, collections, the document registry) takes a `StateDatabase` and writes its SQL once, with
`?` placeholders; the times it compares (leases) come from `database.now(db)`: the host's clock in SQLite, the
server's in PostgreSQL. Each store declares its schema steps for both dialects. `state_database` picks the backend
from the settings; the composition root is its only caller outside tests.
"""

from __future__ import annotations

import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from app.postgres import PostgresDatabase
from app.sqlite import SQLiteDatabase

if TYPE_CHECKING:
    from app.settings import Settings

StateDatabase = SQLiteDatabase | PostgresDatabase


def database_errors() -> tuple[type[BaseException], ...]:
    """The exceptions a state database raises when it cannot answer (SQLite's, the OS's, and psycopg's once PostgreSQL
    state is in use: psycopg is never imported just to name its error, so the default install does not load it)."""
    psycopg = sys.modules.get("psycopg")
    return (sqlite3.Error, OSError) + ((psycopg.Error,) if psycopg is not None else ())


def open_state_database(
    state_url: str | None,
    *,
    name: str,
    sqlite_path: Path,
    sqlite_migrations: Sequence[str],
    postgres_migrations: Sequence[str],
    timeout: float = 30.0,
    clock: Callable[[], float] = time.time,
) -> StateDatabase:
    """The store `name`'s tables: in PostgreSQL at `state_url` when given (its `postgres_migrations`), else in the
    SQLite file `sqlite_path` (its `sqlite_migrations`, times from `clock`)."""
    if state_url:
        return PostgresDatabase(state_url, name=name, migrations=postgres_migrations, timeout=timeout)
    return SQLiteDatabase(sqlite_path, migrations=sqlite_migrations, timeout=timeout, clock=clock)


def state_database(
    settings: Settings,
    *,
    name: str,
    sqlite_path: Path,
    sqlite_migrations: Sequence[str],
    postgres_migrations: Sequence[str],
    timeout: float = 30.0,
) -> StateDatabase:
    """`open_state_database` with the deployment's RAG_STATE_URL."""
    return open_state_database(
        settings.state_url,
        name=name,
        sqlite_path=sqlite_path,
        sqlite_migrations=sqlite_migrations,
        postgres_migrations=postgres_migrations,
        timeout=timeout,
    )
