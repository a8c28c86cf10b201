"""The SQLite helper: migrations run in order, once, atomically; a newer file is refused; transactions roll back."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from app.sqlite import SchemaVersionError, SQLiteDatabase, statements

STEPS = (
    "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL);",
    "ALTER TABLE t ADD COLUMN note TEXT;\nCREATE INDEX t_by_name ON t (name);",
)


def test_a_new_file_gets_every_step_in_order_and_wal(tmp_path):
    database = SQLiteDatabase(tmp_path / "a.db", migrations=STEPS)
    assert database.version == 2
    with database.connect() as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        db.execute("INSERT INTO t (name, note) VALUES ('x', 'y')")
        row = db.execute("SELECT * FROM t").fetchone()
    assert (row["name"], row["note"]) == ("x", "y")  # rows by column name


def test_an_older_file_gets_only_the_steps_it_lacks(tmp_path):
    SQLiteDatabase(tmp_path / "a.db", migrations=STEPS[:1])
    with SQLiteDatabase(tmp_path / "a.db", migrations=STEPS[:1]).connect() as db:
        db.execute("INSERT INTO t (name) VALUES ('kept')")
    upgraded = SQLiteDatabase(tmp_path / "a.db", migrations=STEPS)  # step 1 again would fail: table t exists
    assert upgraded.version == 2
    with upgraded.connect() as db:
        assert [tuple(r) for r in db.execute("SELECT name, note FROM t")] == [("kept", None)]


def test_a_failing_step_leaves_the_file_at_its_previous_version(tmp_path):
    SQLiteDatabase(tmp_path / "a.db", migrations=STEPS[:1])
    broken = (*STEPS, "CREATE TABLE u (id INTEGER);\nINSERT INTO missing VALUES (1);")
    with pytest.raises(sqlite3.OperationalError):
        SQLiteDatabase(tmp_path / "a.db", migrations=broken)
    reopened = SQLiteDatabase(tmp_path / "a.db", migrations=STEPS[:1])
    assert reopened.version == 1
    with reopened.connect() as db:
        assert db.execute("SELECT name FROM sqlite_master WHERE name IN ('u', 't_by_name')").fetchall() == []


def test_a_file_of_a_newer_release_is_refused(tmp_path):
    SQLiteDatabase(tmp_path / "a.db", migrations=STEPS)
    with pytest.raises(SchemaVersionError, match="schema version 2"):
        SQLiteDatabase(tmp_path / "a.db", migrations=STEPS[:1])


def test_concurrent_openers_migrate_once(tmp_path):
    errors: list[BaseException] = []

    def open_it() -> None:
        try:
            SQLiteDatabase(tmp_path / "a.db", migrations=STEPS)
        except BaseException as error:  # collected for the assertion below
            errors.append(error)

    threads = [threading.Thread(target=open_it) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and SQLiteDatabase(tmp_path / "a.db", migrations=STEPS).version == 2


def test_a_transaction_commits_or_rolls_back_as_a_whole(tmp_path):
    database = SQLiteDatabase(tmp_path / "a.db", migrations=STEPS)
    with database.transaction() as db:
        db.execute("INSERT INTO t (name) VALUES ('one')")
    with pytest.raises(RuntimeError), database.transaction() as db:
        db.execute("INSERT INTO t (name) VALUES ('two')")
        raise RuntimeError("abort")
    with database.connect() as db:
        assert [r["name"] for r in db.execute("SELECT name FROM t")] == ["one"]


def test_statements_splits_scripts_and_refuses_a_truncated_one():
    assert statements("CREATE TABLE a (x TEXT DEFAULT ';'); CREATE TABLE b (y);\nCREATE INDEX c ON b (y);\n") == [
        "CREATE TABLE a (x TEXT DEFAULT ';');",
        "CREATE TABLE b (y);",
        "CREATE INDEX c ON b (y);",
    ]
    with pytest.raises(ValueError, match="incomplete"):
        statements("CREATE TABLE a (x TEXT")
