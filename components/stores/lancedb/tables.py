"""The Lance tables of one `LanceDBDocumentStore`: the connection and its bounded cache, opening (or creating) a table
and bringing an older one's schema up to date, and, for a store partitioned by a meta field (`partition_field`, see
`components.stores.lancedb.partitions`), which tables a filter reads and the move of rows stored before the store
was partitioned into their tables.

The connection is opened lazily, on first use: LanceDB must not be opened before a process forks, and a loader
may still change the store's ``path`` after ``__init__``; every setting is read from the store when it is used.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import lancedb
import pyarrow as pa
from haystack import logging
from haystack.dataclasses import Document

from components.stores.lancedb.converters import KEYWORD_COLUMN, check_table_schema, table_schema
from components.stores.lancedb.filters import in_list_sql, quote_identifier, quote_literal, scan
from components.stores.lancedb.indexes import TableIndexes, cache_session
from components.stores.lancedb.partitions import is_partition_table, partition_table_name, pinned_values

if TYPE_CHECKING:
    from components.stores.lancedb.document_store import LanceDBDocumentStore

logger = logging.getLogger(__name__)

_VERSION_CHECK_S = 1.0
#: How many ids go into one `id IN (...)` lookup, update or delete.
ID_LOOKUP_CHUNK = 1000


@dataclass
class OpenTable:
    """One open Lance table of the store and what this process knows of it."""

    name: str
    table: Any
    indexes: TableIndexes
    opened_version: int
    has_keyword_column: bool  # whether it has `keyword_text`
    seen_version: int = -1  # the version `StoreTables._moved_on` last read (the opened one until then)
    # columns -> (table version, rows) of `columns()`
    scans: dict[tuple[str, ...], tuple[int, pa.Table]] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.seen_version < 0:
            self.seen_version = self.opened_version

    def columns(self, columns: list[str]) -> pa.Table:
        """`columns` of every row, scanned once per table version (a listing of many collections reads each table's
        version, ~0.3 ms, instead of scanning it, ~3 ms)."""
        key = tuple(columns)
        version = self.seen_version = int(self.table.version)
        cached = self.scans.get(key)
        if cached is None or cached[0] != version:
            cached = (version, scan(self.table, columns, None))  # as new as `version` or newer: never stale
            self.scans[key] = cached
        return cached[1]


class StoreTables:
    """The open tables of one store. Its lock is the store's: opening a table never overlaps the store's writes."""

    def __init__(self, store: LanceDBDocumentStore, lock: threading.RLock) -> None:
        self._store = store
        self.lock = lock
        self.session: Any = None  # one bounded cache for every connection the store opens
        self._db: Any = None
        self._open: dict[str, OpenTable] = {}  # by table name
        self._opened_path: str | None = None
        self._opened_pid: int | None = None
        self._version_checked = 0.0
        self._base_checked = False  # whether a partitioned store looked for rows to move out of `table_name`
        self.written: set[str] = set()  # tables written since the store's last optimization

    def connect(self) -> Any:
        if self._opened_pid is not None and self._opened_pid != os.getpid():
            raise RuntimeError(
                "This LanceDBDocumentStore was opened before the process forked; LanceDB handles cannot be used "
                "across a fork. Create (or first use) the store in the worker process instead."
            )
        if self._db is None or self._opened_path != self._store.path:
            resolved = os.path.expanduser(os.path.expandvars(self._store.path))
            if "$" in resolved:
                raise ValueError(f"LanceDB path {self._store.path!r} names an unset environment variable")
            if self.session is None:
                self.session = cache_session(
                    index_cache_mb=self._store.index_cache_mb, metadata_cache_mb=self._store.metadata_cache_mb
                )
            self._db = lancedb.connect(resolved, read_consistency_interval=timedelta(0), session=self.session)
            self._opened_path = self._store.path
            self._opened_pid = os.getpid()
            self._open.clear()
            logger.debug("Connected to LanceDB at {path}", path=self._store.path)
        return self._db

    def names(self) -> list[str]:
        """The names of every table in the database (paged by LanceDB)."""
        db = self.connect()
        names: list[str] = []
        page_token: str | None = None
        while True:
            response = db.list_tables(page_token=page_token)
            names.extend(response.tables)
            page_token = response.page_token
            if not page_token:
                return names

    def close(self, *, keep_cache: bool = False) -> None:
        """Drop the connection and its open tables (the next operation reopens them), and the cache unless
        `keep_cache`."""
        with self.lock:
            self._open.clear()
            self._db = None
            if not keep_cache:
                self.session = None

    def forget(self, name: str) -> None:
        """Drop the handle of table `name` (it was dropped)."""
        self._open.pop(name, None)

    def open(self, name: str, *, create: bool, listed: bool = False) -> OpenTable | None:
        """Return the open table `name` and its state, opening (or, with `create`, creating) it; `None` if absent.
        `listed`: the database's table list, just read, holds `name`."""
        with self.lock:
            state = self._open.get(name)
            if state is not None and self._opened_path == self._store.path and self._opened_pid == os.getpid():
                if not self._moved_on(state):
                    return state
                logger.debug("Reopening LanceDB table {table_name} with a fresh cache", table_name=name)
                self.close()
            db = self.connect()
            if self._store.partition_field is not None and not self._base_checked:
                self._base_checked = True
                if name != self._store.table_name:
                    self.open(self._store.table_name, create=False)  # moves rows stored before partitioning
            if listed or name in self.names():
                table = db.open_table(name)
                self._add_promoted_columns(table, name)
                self._check_schema(table.schema, name)
                if self._store.keyword_meta_fields is not None and KEYWORD_COLUMN not in table.schema.names:
                    self._add_keyword_column(table, name)
            elif create:
                schema = table_schema(
                    self._store.embedding_dim,
                    self._store.indexed_meta_fields,
                    keyword_column=self._store.keyword_meta_fields is not None,
                )
                table = db.create_table(name, schema=schema, mode="create", exist_ok=True)
                self._check_schema(table.schema, name)
                logger.info("Created LanceDB table {table_name} at {path}", table_name=name, path=self._store.path)
            else:
                return None
            has_keyword_column = KEYWORD_COLUMN in table.schema.names
            indexes = TableIndexes(
                table_name=name, scalar_columns=["id", *self._store.indexed_meta_fields], lock=self.lock
            )
            indexes.fts_column = KEYWORD_COLUMN if has_keyword_column else "content"
            indexes.refresh(table)
            state = OpenTable(name, table, indexes, int(table.version), has_keyword_column)
            self._open[name] = state
            self._version_checked = time.monotonic()
            if self._store.partition_field is not None and name == self._store.table_name:
                self._move_into_partitions(state)
            return state

    def names_for(self, filters: dict[str, Any] | None) -> list[str]:
        """The tables that may hold documents matching the (validated) `filters`."""
        if self._store.partition_field is None:
            return [self._store.table_name]
        values = pinned_values(filters, self._store.partition_field)
        if values is not None:
            return sorted({partition_table_name(self._store.table_name, value) for value in values})
        with self.lock:
            self.open(self._store.table_name, create=False)  # moves rows stored before partitioning
            names = self.names()
        base = [self._store.table_name] if self._store.table_name in names else []
        return [*base, *sorted(n for n in names if is_partition_table(self._store.table_name, n))]

    def for_filters(self, filters: dict[str, Any] | None) -> list[OpenTable]:
        """The open tables that may hold documents matching the (validated) `filters` (the existing ones)."""
        names = self.names_for(filters)
        listed = self._store.partition_field is not None and pinned_values(filters, self._store.partition_field) is None
        states = [self.open(name, create=False, listed=listed) for name in names]
        return [state for state in states if state is not None]

    def name_of(self, document: Document) -> str:
        """The table `document` belongs in."""
        if self._store.partition_field is None:
            return self._store.table_name
        return partition_table_name(self._store.table_name, document.meta.get(self._store.partition_field))

    def _move_into_partitions(self, base: OpenTable) -> None:
        """Move the rows of the base table that have a partition value into their tables (a table created before the
        store was partitioned). Each value's rows are merged into its table by id, then deleted here: a crash in
        between leaves them in both, and the next open finishes the move."""
        field = self._store.partition_field
        if field is None:
            return
        column = quote_identifier(field)
        where = f"{column} IS NOT NULL"
        if base.table.count_rows(where) == 0:
            return
        values = set(scan(base.table, [field], where).column(field).to_pylist())
        logger.warning(
            "Moving the rows of LanceDB table {table_name} into one table per {field} ({count} values)",
            table_name=self._store.table_name,
            field=field,
            count=len(values),
        )
        for value in sorted(values):
            value_where = f"{column} = {quote_literal(value)}"
            rows = base.table.search().where(value_where).limit(None).to_arrow()
            target = self.open(partition_table_name(self._store.table_name, value), create=True)
            assert target is not None
            rows = rows.select([name for name in target.table.schema.names if name in rows.column_names])
            target.table.merge_insert("id").when_matched_update_all().when_not_matched_insert_all().execute(rows)
            base.table.delete(value_where)
            self.written.update({target.name, base.name})

    def _add_promoted_columns(self, table: Any, name: str) -> None:
        """Give a table created with fewer `indexed_meta_fields` the missing columns: null, then filled from the meta
        of the rows whose `meta_json` holds the field (one update per distinct value; usually none)."""
        missing = [field for field in self._store.indexed_meta_fields if field not in table.schema.names]
        if not missing:
            return
        logger.warning(
            "Adding the promoted meta columns {fields} to LanceDB table {table_name}",
            fields=missing,
            table_name=name,
        )
        try:
            table.add_columns({field: "CAST(NULL AS STRING)" for field in missing})
        except (RuntimeError, ValueError, OSError) as error:
            table.checkout_latest()  # another process (a server beside a CLI ingest) added them at the same moment
            if any(field not in table.schema.names for field in missing):
                raise
            logger.info("The promoted columns were added concurrently by another writer ({error})", error=str(error))
            return
        for field in missing:
            pattern = quote_literal(f'%"{field}"%')
            rows = scan(table, ["id", "meta_json"], f"meta_json LIKE {pattern}")
            by_value: dict[str, list[str]] = {}
            for row_id, meta in zip(rows.column("id").to_pylist(), rows.column("meta_json").to_pylist(), strict=True):
                value = json.loads(meta).get(field)
                if isinstance(value, str):
                    by_value.setdefault(value, []).append(row_id)
            for value, ids in by_value.items():
                for start in range(0, len(ids), ID_LOOKUP_CHUNK):
                    where = in_list_sql("id", ids[start : start + ID_LOOKUP_CHUNK])
                    table.update(where=where, values={field: value})

    def _add_keyword_column(self, table: Any, name: str) -> None:
        """Give a table created before `keyword_meta_fields` its `keyword_text` column, filled with the content of the
        rows already stored (their meta fields are indexed once they are written again); one commit."""
        logger.warning(
            "Adding the keyword_text column to LanceDB table {table_name}: the chunks already stored are "
            "keyword-indexed by their content only; re-ingest them to index keyword_meta_fields {fields} too",
            table_name=name,
            fields=self._store.keyword_meta_fields,
        )
        try:
            table.add_columns({KEYWORD_COLUMN: "content"})
        except (RuntimeError, ValueError, OSError) as error:
            # another process (a server beside a CLI ingest) added it at the same moment
            table.checkout_latest()
            if KEYWORD_COLUMN not in table.schema.names:
                raise
            logger.info("keyword_text was added concurrently by another writer ({error})", error=str(error))

    def _moved_on(self, state: OpenTable) -> bool:
        """True when the open tables together moved `reopen_after_versions` versions past the ones they were opened at
        (the connection keeps native memory for every version of every table it follows). Checked at most once a
        second, on the table being read (its version is read from storage); the others count as last seen."""
        if not self._store.reopen_after_versions:
            return False
        now = time.monotonic()
        if now - self._version_checked < _VERSION_CHECK_S:
            return False
        self._version_checked = now
        state.seen_version = int(state.table.version)
        moved = sum(table.seen_version - table.opened_version for table in self._open.values())
        return moved >= self._store.reopen_after_versions

    def _check_schema(self, schema: pa.Schema, name: str) -> None:
        check_table_schema(
            schema,
            embedding_dim=self._store.embedding_dim,
            indexed_meta_fields=self._store.indexed_meta_fields,
            table_name=name,
            path=self._store.path,
        )
