"""Files of the OpenAI Files API (`/v1/files`): uploaded once, stored by content hash, listed by cursor.

A file's bytes are written once per distinct content to a blob store (`<sha256[:2]>/<sha256>`), whatever the number
of uploads of the same bytes; its row in the `files` table of the state database (SQLite under RAG_DATA_DIR, or
PostgreSQL with RAG_STATE_URL) records its id (`file-<24 hex>`), purpose, name, size, hash, creation time and the API
key that created it. Attaching a file to a vector store (`app.services.vector_stores`) indexes its bytes into that
store's collection.

Scope: a key restricted to collections sees the files it created and the files attached to the vector stores it may
read (`attached_to`, given by the composition root); an unrestricted key sees every file.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from app.blobs import BlobStore
from app.errors import InvalidInputError, NotFoundError, PayloadTooLargeError, PermissionDeniedError
from app.services.api_keys import ApiKey
from app.services.naming import clean_filename
from app.state import StateDatabase

SQLITE_MIGRATIONS = (
    """
    CREATE TABLE IF NOT EXISTS files (
        id TEXT PRIMARY KEY,
        purpose TEXT NOT NULL,
        filename TEXT NOT NULL,
        bytes INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        created_at REAL NOT NULL,
        key_id TEXT
    );
    CREATE INDEX IF NOT EXISTS files_by_created ON files (created_at, id);
    CREATE INDEX IF NOT EXISTS files_by_sha256 ON files (sha256);
    """,
    "ALTER TABLE files ADD COLUMN tenant TEXT;",  # 2: the tenant of the key that uploaded it (NULL: none)
)
POSTGRES_MIGRATIONS = (
    """
    CREATE TABLE IF NOT EXISTS files (
        id TEXT PRIMARY KEY,
        purpose TEXT NOT NULL,
        filename TEXT NOT NULL,
        bytes BIGINT NOT NULL,
        sha256 TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        key_id TEXT
    );
    CREATE INDEX IF NOT EXISTS files_by_created ON files (created_at, id);
    CREATE INDEX IF NOT EXISTS files_by_sha256 ON files (sha256);
    """,
    "ALTER TABLE files ADD COLUMN tenant TEXT;",
)

PURPOSES = ("assistants", "user_data")  # the purposes of files meant for vector stores
MAX_LIST = 10_000
Order = Literal["asc", "desc"]


@dataclass(frozen=True)
class StoredFile:
    """One row of the `files` table."""

    id: str
    purpose: str
    filename: str
    bytes: int
    sha256: str
    created_at: float
    key_id: str | None
    tenant: str | None = None  # the tenant of the key that uploaded it


def new_file_id() -> str:
    return f"file-{uuid.uuid4().hex[:24]}"


def blob_key(sha256: str) -> str:
    return f"{sha256[:2]}/{sha256}"


def _row(row: Any) -> StoredFile:
    return StoredFile(
        id=row["id"],
        purpose=row["purpose"],
        filename=row["filename"],
        bytes=int(row["bytes"]),
        sha256=row["sha256"],
        created_at=float(row["created_at"]),
        key_id=row["key_id"],
        tenant=row["tenant"],
    )


def _tenant_stores(key: ApiKey) -> frozenset[str] | None:
    """The collections of a tenant's key (None for a key without tenant: every collection without tenant)."""
    return key.boundary.names if key.boundary is not None and key.boundary.only else None


def cursor_clause(order: Order, after: tuple[float, str] | None) -> tuple[str, list[Any], str]:
    """`(where, params, order by)` of a `(created_at, id)` cursor page after the row `after` (None: from the start)."""
    direction = "ASC" if order == "asc" else "DESC"
    by = f"created_at {direction}, id {direction}"
    if after is None:
        return "", [], by
    op = ">" if order == "asc" else "<"
    return f"(created_at {op} ? OR (created_at = ? AND id {op} ?))", [after[0], after[0], after[1]], by


class FileService:
    """Upload, list, read and delete files (the OpenAI Files API)."""

    def __init__(
        self,
        database: StateDatabase,
        blobs: BlobStore,
        *,
        max_bytes: int,
        attached_to: Callable[[str], Iterable[str]] | None = None,
        attached_within: Callable[[frozenset[str]], Iterable[str]] | None = None,
    ) -> None:
        """`max_bytes`: the largest file accepted (RAG_MAX_UPLOAD_MB); `attached_to(file_id)`: the vector stores
        (collections) the file is attached to; `attached_within(collections)`: the ids of the files attached to any
        of them (both from `VectorStoreService`, for the scope of restricted keys)."""
        self.db = database
        self.blobs = blobs
        self.max_bytes = max_bytes
        self.attached_to = attached_to
        self.attached_within = attached_within

    def create(self, data: bytes, filename: str | None, purpose: str, key: ApiKey | None = None) -> StoredFile:
        """Store an uploaded file (its bytes once per content); 400 for a purpose other than `PURPOSES`, 413 beyond
        `max_bytes`."""
        if purpose not in PURPOSES:
            raise InvalidInputError(
                f"purpose {purpose!r} is not supported: use one of {', '.join(PURPOSES)} (files for vector stores)"
            )
        if len(data) > self.max_bytes:
            raise PayloadTooLargeError(f"file is larger than {self.max_bytes // (1024 * 1024)} MiB")
        sha256 = hashlib.sha256(data).hexdigest()
        name = clean_filename(filename)
        file_id = new_file_id()
        tenant = key.tenant if key is not None else None
        with self.db.transaction() as db:  # the row first: a twin deleted meanwhile sees it and leaves the bytes
            now = float(self.db.now(db))  # type: ignore[arg-type]
            db.execute(
                "INSERT INTO files (id, purpose, filename, bytes, sha256, created_at, key_id, tenant) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (file_id, purpose, name, len(data), sha256, now, key.id if key is not None else None, tenant),
            )
        try:
            self.blobs.put(blob_key(sha256), data)  # one object per content: a twin's upload writes the same bytes
        except BaseException:
            with self.db.transaction() as db:
                db.execute("DELETE FROM files WHERE id = ?", (file_id,))
            raise
        return StoredFile(
            file_id, purpose, name, len(data), sha256, float(now), key.id if key is not None else None, tenant
        )

    def _get(self, file_id: str) -> StoredFile:
        with self.db.connect() as db:
            row = db.execute("SELECT * FROM files WHERE id = ?", (file_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"file {file_id!r} does not exist")
        return _row(row)

    def visible(self, stored: StoredFile, key: ApiKey | None) -> bool:
        """True when `key` may see the file (None: an internal caller, every file): its own, any of its tenant's for a
        key on every collection, and those attached to a vector store (collection) it may use."""
        if key is None or stored.key_id == key.id or (key.collections is None and self.within_tenant(stored, key)):
            return True
        if self.attached_to is None:
            return False
        return any(key.allows(store) for store in self.attached_to(stored.id))

    @staticmethod
    def within_tenant(stored: StoredFile, key: ApiKey) -> bool:
        """True when the file was uploaded by a key of `key`'s tenant (the operator sees every tenant's)."""
        return key.is_operator or (key.boundary is None and key.tenant is None) or stored.tenant == key.tenant

    def get(self, file_id: str, key: ApiKey | None = None) -> StoredFile:
        """The file; 404 when unknown (or another tenant's and not in a vector store of `key`'s), 403 when `key` may
        not see it."""
        stored = self._get(file_id)
        if not self.visible(stored, key):
            if key is not None and not self.within_tenant(stored, key):
                raise NotFoundError(f"file {file_id!r} does not exist")
            raise PermissionDeniedError(f"this API key may not use file {file_id!r}")
        return stored

    def content(self, file_id: str, key: ApiKey | None = None) -> tuple[StoredFile, bytes]:
        stored = self.get(file_id, key)
        return stored, self.blobs.get(blob_key(stored.sha256))

    def list(
        self,
        key: ApiKey | None = None,
        *,
        purpose: str | None = None,
        limit: int = MAX_LIST,
        order: Order = "desc",
        after: str | None = None,
    ) -> tuple[list[StoredFile], bool]:
        """A page of the files `key` may see (newest first by default), after the file `after`; and whether more
        follow."""
        if not 1 <= limit <= MAX_LIST:
            raise InvalidInputError(f"limit must be between 1 and {MAX_LIST}")
        where: list[str] = []
        params: list[Any] = []
        if purpose is not None:
            where.append("purpose = ?")
            params.append(purpose)
        bounded = key is not None and not key.is_operator and key.boundary is not None
        if key is not None and (key.collections is not None or bounded):
            stores = key.collections if key.collections is not None else _tenant_stores(key)
            within = frozenset(n for n in stores or () if key.allows(n))
            attached = sorted(set(self.attached_within(within))) if self.attached_within and within else []
            ids = " OR id IN (" + ", ".join("?" * len(attached)) + ")" if attached else ""
            if key.collections is None:  # every file of its tenant (COALESCE: NULL is no tenant)
                ids += " OR COALESCE(tenant, '') = ?"
            where.append(f"(key_id = ?{ids})")
            params.extend([key.id, *attached])
            if key.collections is None:
                params.append(key.tenant or "")
        cursor = None
        if after is not None:
            start = self._get(after) if after else None
            cursor = (start.created_at, start.id) if start is not None else None
        clause, cursor_params, by = cursor_clause(order, cursor)
        if clause:
            where.append(clause)
            params.extend(cursor_params)
        sql = "SELECT * FROM files" + (" WHERE " + " AND ".join(where) if where else "") + f" ORDER BY {by} LIMIT ?"
        with self.db.connect() as db:
            rows = db.execute(sql, [*params, limit + 1]).fetchall()
        return [_row(r) for r in rows[:limit]], len(rows) > limit

    def delete(self, file_id: str, key: ApiKey | None = None) -> None:
        """Forget the file; its bytes go once no other file has the same content. Vector stores it is attached to
        keep what was indexed from it (detach it there to remove that)."""
        stored = self.get(file_id, key)
        with self.db.transaction() as db:
            db.execute("DELETE FROM files WHERE id = ?", (file_id,))
            left = db.execute("SELECT 1 FROM files WHERE sha256 = ? LIMIT 1", (stored.sha256,)).fetchone()
        if left is None:
            self.blobs.delete(blob_key(stored.sha256))
