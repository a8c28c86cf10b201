"""`app.state`: the same SQL on SQLite and PostgreSQL (placeholders, rows, the database's clock, migrations)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.postgres import PostgresDatabase, to_pyformat
from app.sqlite import SchemaVersionError
from app.state import open_state_database

SQLITE_STEPS = ["CREATE TABLE probe (name TEXT PRIMARY KEY, at REAL NOT NULL);", "ALTER TABLE probe ADD COLUMN n INT;"]
POSTGRES_STEPS = [
    "CREATE TABLE probe (name TEXT PRIMARY KEY, at DOUBLE PRECISION NOT NULL); CREATE INDEX probe_at ON probe (at);",
    "ALTER TABLE probe ADD COLUMN n INTEGER;",
]


def _open(state_url: str | None, tmp_path: Path, steps: int = 2, clock=lambda: 1000.0):  # type: ignore[no-untyped-def]
    return open_state_database(
        state_url,
        name="probe",
        sqlite_path=tmp_path / "probe.db",
        sqlite_migrations=SQLITE_STEPS[:steps],
        postgres_migrations=POSTGRES_STEPS[:steps],
        clock=clock,
    )


def test_placeholders_become_pyformat_and_percent_is_literal() -> None:
    assert to_pyformat("SELECT * FROM t WHERE a = ? AND b LIKE 'x%'") == "SELECT * FROM t WHERE a = %s AND b LIKE 'x%%'"


def test_same_sql_rows_by_name_and_position(state_url: str | None, tmp_path: Path) -> None:
    database = _open(state_url, tmp_path)
    with database.transaction() as db:
        db.execute("INSERT INTO probe (name, at, n) VALUES (?, ?, ?)", ("a%b", database.now(db), 3))
        updated = db.execute("UPDATE probe SET n = n + 1 WHERE name = ?", ("a%b",)).rowcount
    assert updated == 1
    with database.connect() as db:
        row = db.execute("SELECT name, n FROM probe WHERE name LIKE 'a%'").fetchone()
    assert (row["name"], row[1]) == ("a%b", 4)


def test_a_failed_transaction_writes_nothing(state_url: str | None, tmp_path: Path) -> None:
    database = _open(state_url, tmp_path)
    with pytest.raises(RuntimeError), database.transaction() as db:
        db.execute("INSERT INTO probe (name, at) VALUES (?, ?)", ("gone", 1.0))
        raise RuntimeError("boom")
    with database.connect() as db:
        assert db.execute("SELECT COUNT(*) FROM probe").fetchone()[0] == 0


def test_migrations_run_once_and_a_newer_schema_is_refused(state_url: str | None, tmp_path: Path) -> None:
    assert _open(state_url, tmp_path, steps=1).version == 1
    assert _open(state_url, tmp_path, steps=2).version == 2  # the next step only (the table exists already)
    assert _open(state_url, tmp_path, steps=2).version == 2
    with pytest.raises(SchemaVersionError, match="newer"):
        _open(state_url, tmp_path, steps=1)


def test_sqlite_time_is_the_clock_postgres_time_is_the_servers(state_url: str | None, tmp_path: Path) -> None:
    database = _open(state_url, tmp_path, clock=lambda: 1000.0)  # a host clock ~56 years behind
    with database.connect() as db:
        now = database.now(db)
    if isinstance(database, PostgresDatabase):
        assert now > 1.7e9  # the server's clock: a host's skew does not reach it
    else:
        assert now == 1000.0


@pytest.mark.postgres
def test_replicas_starting_together_migrate_once(pg_schema_url: str) -> None:
    """Eight processes' worth of openers race on a fresh schema: the advisory lock lets one create the table (a plain
    CREATE TABLE, which a second run would fail on) and the others find it done."""
    from concurrent.futures import ThreadPoolExecutor

    steps = ["CREATE TABLE raced (name TEXT PRIMARY KEY);"]

    def open_it(_: int) -> int:
        return PostgresDatabase(pg_schema_url, name="raced", migrations=steps).version

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(open_it, range(8))) == [1] * 8
