"""Collections as a metadata scope: one mechanism for every store (a `collection` field on every chunk).

Listing, counting and dropping use the store's own filter/count/delete methods (Haystack's extended
DocumentStore API), so the same code serves LanceDB, pgvector, Weaviate and Pinecone stores. Listing asks a store that
counts grouped (`components.stores.grouped_counts.GroupedCounts`, both of ours) once for every collection. Collections
created explicitly but still empty are remembered in a small table of the state database (`app.state`: SQLite under
the data directory, or PostgreSQL shared by every host of the deployment). The JSON registry of earlier releases is
imported on first open.

Dropping leaves a tombstone: the collection's *generation* (0 until its first drop) goes up (when the drop starts
and again when it ends: see `CollectionService.drop` for the order of its steps). A writer that
started before the drop (a job, a synchronous upload) captured the older generation: it checks before and after it
writes and removes what it wrote when the generation moved, and `register` does not bring the collection back for it.
Re-creating the collection later (POST /collections, a new upload) works: those writers start at the new generation.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.errors import ConflictError, NotFoundError
from app.services.api_keys import ApiKey, TenantBoundary
from app.services.naming import validate_collection
from app.sqlite import SQLiteDatabase
from app.state import StateDatabase
from components.stores.grouped_counts import GroupedCounts

if TYPE_CHECKING:
    from app.services.registry import DocumentRegistry

# Append-only schema steps of collections.db (`app.sqlite`).
MIGRATIONS = (
    """
    CREATE TABLE IF NOT EXISTS collections (
        name TEXT PRIMARY KEY,
        created_at REAL NOT NULL
    );
    """,
    # 2: tombstones of dropped collections (the generation a writer captures when it starts)
    """
    CREATE TABLE IF NOT EXISTS generations (
        name TEXT PRIMARY KEY,
        generation INTEGER NOT NULL,
        dropped_at REAL NOT NULL
    );
    """,
    # 3: the tenant that created the collection (NULL: none, the operator's)
    """
    ALTER TABLE collections ADD COLUMN tenant TEXT;
    """,
)
SQLITE_MIGRATIONS = MIGRATIONS
# PostgreSQL's steps (its own list, from the current schema on; `app.postgres`).
POSTGRES_MIGRATIONS = (
    """
    CREATE TABLE IF NOT EXISTS collections (
        name TEXT PRIMARY KEY,
        created_at DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE IF NOT EXISTS generations (
        name TEXT PRIMARY KEY,
        generation INTEGER NOT NULL,
        dropped_at DOUBLE PRECISION NOT NULL
    );
    """,
    """
    ALTER TABLE collections ADD COLUMN tenant TEXT;
    """,
)


@dataclass
class CollectionInfo:
    """A collection's name with its number of source documents and chunks."""

    name: str
    documents: int
    chunks: int


def collection_filter(name: str) -> dict[str, Any]:
    """The Haystack filter that scopes to one collection."""
    return {"field": "meta.collection", "operator": "==", "value": name}


class CollectionService:
    """List, create, count and drop collections."""

    def __init__(
        self,
        store: Any,
        registry: Path | StateDatabase,
        *,
        legacy_registry: Path | None = None,
        on_drop: Callable[[str], Any] | None = None,
        has_jobs: Callable[[str], bool] | None = None,
        documents: DocumentRegistry | None = None,
    ) -> None:
        """`registry`: the state database of created collections and their generations (`app.state.state_database`
        with this module's migrations), or the path of a SQLite file (opened with `SQLITE_MIGRATIONS`);
        `legacy_registry`: a JSON list of names written by an earlier release, imported once (then renamed
        `<name>.imported`); `on_drop`: called with the name once the tombstone is written and before the chunks are
        deleted (the jobs of the collection are cancelled); `has_jobs`: True when the collection has a queued or
        running job (so a collection that exists only through its first job, nothing indexed or registered yet, can
        be dropped too); `documents`: the document registry, whose rows of a dropped collection go with its chunks."""
        self.store = store
        self.on_drop = on_drop
        self.has_jobs = has_jobs
        self.documents = documents
        if isinstance(registry, Path):
            registry = SQLiteDatabase(registry, migrations=SQLITE_MIGRATIONS)
        self.registry: StateDatabase = registry
        self._lock = threading.Lock()  # this process's drops one at a time; the tables are safe across hosts anyway
        if legacy_registry is not None:
            self._import(legacy_registry)

    def _now(self, db: Any) -> float:
        """The database's time (the server's clock on PostgreSQL)."""
        return self.registry.now(db)

    def _import(self, path: Path) -> None:
        try:
            names = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        with self.registry.transaction() as db:
            now = self._now(db)
            db.executemany(
                "INSERT INTO collections (name, created_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
                [(str(n), now) for n in names],
            )
        with contextlib.suppress(FileNotFoundError):  # another process imported it at the same time
            os.replace(path, path.with_name(path.name + ".imported"))

    def _registered(self) -> set[str]:
        with self.registry.connect() as db:
            return {row["name"] for row in db.execute("SELECT name FROM collections").fetchall()}

    def _is_registered(self, name: str) -> bool:
        with self.registry.connect() as db:
            return db.execute("SELECT 1 FROM collections WHERE name = ?", (name,)).fetchone() is not None

    def _in_store(self) -> set[str]:
        names, _ = self.store.get_metadata_field_unique_values("meta.collection", size=100_000)
        return {str(n) for n in names}

    def info(self, name: str, *, visibility: dict[str, Any] | None = None) -> CollectionInfo:
        """Counts for one collection (zeros for an empty one); with `visibility` (a caller's read filter), of the
        documents it may read only."""
        scope = collection_filter(name)
        if visibility:
            scope = {"operator": "AND", "conditions": [scope, visibility]}
        documents = self.store.count_unique_metadata_by_filter(scope, ["document_id"]).get("document_id", 0)
        return CollectionInfo(
            name=name, documents=int(documents), chunks=int(self.store.count_documents_by_filter(scope))
        )

    def names(self) -> list[str]:
        """The names of every collection that holds chunks or was created explicitly (no counts)."""
        return sorted(self._registered() | self._in_store())

    def list(
        self, *, within: frozenset[str] | None = None, visibility: dict[str, Any] | None = None
    ) -> list[CollectionInfo]:
        """Every collection that holds chunks or was created explicitly (only those `within`, if given), counted.

        A store with a grouped count (`GroupedCounts`: one query for every collection) is asked once; any other store,
        or a caller with a read filter (`visibility`: the counts are of the documents it may read, the filter in the
        store's count queries), is asked for each collection on its own (two store calls per collection).
        """
        if visibility or not isinstance(self.store, GroupedCounts):
            return [self.info(name, visibility=visibility) for name in self.names() if within is None or name in within]
        counts = self.store.grouped_counts("meta.collection", ["meta.document_id"])
        names = sorted(self._registered() | {str(name) for name in counts})
        return [
            CollectionInfo(
                name=name,
                documents=int(counts.get(name, {}).get("document_id", 0)),
                chunks=int(counts.get(name, {}).get("count", 0)),
            )
            for name in names
            if within is None or name in within
        ]

    def exists(self, name: str) -> bool:
        """True when the collection was created or holds chunks."""
        return self._is_registered(name) or self.store.count_documents_by_filter(collection_filter(name)) > 0

    def create(self, name: str, *, tenant: str | None = None) -> CollectionInfo:
        """Create an empty collection of `tenant` (None: without tenant); 409 when it exists, whoever holds it (also
        when another process created it at the same time): names are unique across tenants."""
        validate_collection(name)
        with self._lock:
            if self.store.count_documents_by_filter(collection_filter(name)) > 0:
                raise ConflictError(f"collection {name!r} already exists")
            with self.registry.connect() as db:  # one statement: of concurrent creates (any host) one inserts
                inserted = db.execute(
                    "INSERT INTO collections (name, created_at, tenant) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING",
                    (name, self._now(db), tenant or None),
                ).rowcount
            if not inserted:
                raise ConflictError(f"collection {name!r} already exists")
        return self.info(name)

    def claim(self, name: str, tenant: str | None) -> None:
        """Before a key of `tenant` writes into `name` (an upload creates its collection). For a tenant: record it as
        the collection's, unless it is the tenant's already. 409 when the name is another tenant's or a collection
        without tenant, or, for a key without tenant (None), when it is a tenant's (whichever: the answer does not
        say); a key without tenant's new collection is registered as before, once something is written."""
        validate_collection(name)
        with self.registry.connect() as db:
            row = db.execute("SELECT tenant FROM collections WHERE name = ?", (name,)).fetchone()
            if row is None and tenant is None:
                return
            if row is None and self.store.count_documents_by_filter(collection_filter(name)) == 0:
                db.execute(  # of concurrent claims (any host) one inserts; the others read its tenant below
                    "INSERT INTO collections (name, created_at, tenant) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING",
                    (name, self._now(db), tenant),
                )
                row = db.execute("SELECT tenant FROM collections WHERE name = ?", (name,)).fetchone()
        if row is None or (row["tenant"] or "") != (tenant or ""):
            raise ConflictError(f"collection {name!r} already exists")

    def tenant_of(self, name: str) -> str:
        """The tenant of the collection ("" for none, also for a collection that is not registered)."""
        with self.registry.connect() as db:
            row = db.execute("SELECT tenant FROM collections WHERE name = ?", (name,)).fetchone()
        return str(row["tenant"] or "") if row is not None else ""

    def bound(self, key: ApiKey) -> ApiKey:
        """`key` with its tenant boundary (`ApiKey.boundary`), read now: a key of a tenant uses only the collections
        of its tenant, a key without tenant that is not an admin only the collections without tenant; the operator
        (an admin key without tenant) every collection."""
        if key.is_operator:
            return key
        with self.registry.connect() as db:
            if key.tenant is not None:
                rows = db.execute("SELECT name FROM collections WHERE tenant = ?", (key.tenant,)).fetchall()
            else:
                rows = db.execute("SELECT name FROM collections WHERE tenant IS NOT NULL AND tenant <> ''").fetchall()
        names = frozenset(str(row["name"]) for row in rows)
        return dataclasses.replace(key, boundary=TenantBoundary(names=names, only=key.tenant is not None))

    def generation(self, name: str) -> int:
        """How many times the collection was dropped: a writer captures it when it starts and compares it later."""
        with self.registry.connect() as db:
            row = db.execute("SELECT generation FROM generations WHERE name = ?", (name,)).fetchone()
        return int(row["generation"]) if row is not None else 0

    def register(self, name: str, generation: int | None = None, *, tenant: str | None = None) -> bool:
        """Remember a collection (ingest into a new collection creates it implicitly), of `tenant` when it is new (a
        tenant's key claims it before it writes: `claim`).

        A writer passes the `generation` it captured when it started: when the collection was dropped since, it is
        not registered again (False).
        """
        with self.registry.transaction() as db:
            now = self._now(db)
            if generation is not None and self._lock_generation(db, name, now) != generation:
                return False
            db.execute(
                "INSERT INTO collections (name, created_at, tenant) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING",
                (name, now, tenant or None),
            )
        return True

    @staticmethod
    def _lock_generation(db: Any, name: str, now: float) -> int:
        """The collection's generation, its row locked until the transaction ends (created at 0 when the collection
        was never dropped): a tombstone of another host waits for this transaction, or this one for it."""
        rows = db.execute(
            "INSERT INTO generations (name, generation, dropped_at) VALUES (?, 0, ?) "
            "ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING generation",
            (name, now),
        ).fetchall()
        return int(rows[0][0])

    def drop(self, name: str) -> int:
        """Delete every chunk of the collection, forget it and cancel its jobs; 404 when it does not exist (neither
        registered, nor holding chunks, nor the target of a queued or running job).

        The tombstone, the job cancellation and the deletion live in different files (collections.db, jobs.db, the
        document store), so they cannot be one transaction (SQLite commits ATTACHed WAL databases atomically per file
        only). They run in this order, which is safe under any interleaving:

        1. the tombstone: generation + 1 and the registry row removed, one transaction. From its commit on, every
           writer that started before it (a job, a synchronous upload: they captured the older generation) sees the
           generation moved: `register` refuses it, the runner stops before its next step and removes what it wrote.
        2. `on_drop`: the collection's unfinished jobs are cancelled. A job that starts between 1 and 2 has the old
           generation and stops at its first check.
        3. the chunks are deleted: whatever was written before this step is deleted here, and a writer of before 1
           that finishes a write after it deletes that itself when it checks the generation after the write.
        4. the closing tombstone: generation + 1 again and the registry row removed again, one transaction. A writer
           that started during the drop (it captured the generation of step 1) may have written before 3 and
           registered before 4: its chunks are gone with 3, its registration with 4, and from 4 on its checks and
           `register` fail like those of a writer of before the drop. So whatever overlaps the drop ends either
           before it (dropped with it) or after it (a new collection, with only what was written after 3).

        A drop moves the generation by two. A drop interrupted between 1 and 4 (the process killed) leaves the
        tombstone of 1, so writers of before it stay refused; dropping again completes it while anything of the
        collection is left.
        """
        validate_collection(name)
        with self._lock:
            if not self.exists(name) and not (self.has_jobs is not None and self.has_jobs(name)):
                raise NotFoundError(f"collection {name!r} does not exist")
            self._tombstone(name)
            if self.on_drop is not None:
                self.on_drop(name)
            deleted = int(self.store.delete_by_filter(collection_filter(name)))
            if self.documents is not None:
                self.documents.forget_collection(name)
            self._tombstone(name)
        return deleted

    def _tombstone(self, name: str) -> None:
        """Move the collection's generation on and forget its registration (one transaction)."""
        with self.registry.transaction() as db:
            db.execute(
                "INSERT INTO generations (name, generation, dropped_at) VALUES (?, 1, ?) ON CONFLICT (name) "
                "DO UPDATE SET generation = generations.generation + 1, dropped_at = excluded.dropped_at",
                (name, self._now(db)),
            )
            db.execute("DELETE FROM collections WHERE name = ?", (name,))
