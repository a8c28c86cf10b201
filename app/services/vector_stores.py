"""Vector stores of the OpenAI API (`/v1/vector_stores`), mapped onto collections.

A vector store IS a collection: its id is the collection's name. A store created here gets a new collection
`vs_<24 hex>`; every existing collection shows up as a store whose id and name are the collection's name. The
OpenAI-only fields (name, metadata, expires_after, chunking_strategy, last_active_at) live in the `vector_stores`
table of the state database; the files attached to a store in `vector_store_files` (with the ingestion job and the
index of the file in it: the file's status and last error are the job file's), and file batches in
`vector_store_file_batches` (one ingestion job each).

Attaching files submits ONE ingestion job (`JobService.submit`) of the files' bytes into the store's collection; each
file carries its own tags: its attributes and `file_id` (every chunk indexed from it has `meta["file_id"]`).
Detaching a file removes its document's chunks from the collection (the file itself stays). A store whose
`expires_after` days passed since its last activity is `expired`: `check_active` refuses it (search, responses).
"""

from __future__ import annotations

import builtins
import json
import math
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from app.errors import ConflictError, InvalidInputError, NotFoundError
from app.jobs import FileState, FileStatus, Job, JobService, UploadedFile
from app.services.collections import CollectionService
from app.services.documents import DocumentService
from app.services.files import FileService, Order
from app.services.naming import COLLECTION_PATTERN, document_id_for, validate_tags
from app.state import StateDatabase

SQLITE_MIGRATIONS = (
    """
    CREATE TABLE IF NOT EXISTS vector_stores (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        metadata TEXT NOT NULL,
        expires_after_days INTEGER,
        chunking_strategy TEXT,
        created_at REAL NOT NULL,
        last_active_at REAL NOT NULL
    );
    CREATE TABLE IF NOT EXISTS vector_store_files (
        vector_store_id TEXT NOT NULL,
        file_id TEXT NOT NULL,
        attributes TEXT NOT NULL,
        chunking_strategy TEXT,
        job_id TEXT,
        job_index INTEGER NOT NULL DEFAULT 0,
        batch_id TEXT,
        bytes INTEGER NOT NULL DEFAULT 0,
        sha256 TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (vector_store_id, file_id)
    );
    CREATE INDEX IF NOT EXISTS vector_store_files_by_file ON vector_store_files (file_id);
    CREATE INDEX IF NOT EXISTS vector_store_files_by_batch ON vector_store_files (batch_id);
    CREATE TABLE IF NOT EXISTS vector_store_file_batches (
        id TEXT PRIMARY KEY,
        vector_store_id TEXT NOT NULL,
        job_id TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    """,
)
POSTGRES_MIGRATIONS = (
    """
    CREATE TABLE IF NOT EXISTS vector_stores (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        metadata TEXT NOT NULL,
        expires_after_days INTEGER,
        chunking_strategy TEXT,
        created_at DOUBLE PRECISION NOT NULL,
        last_active_at DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE IF NOT EXISTS vector_store_files (
        vector_store_id TEXT NOT NULL,
        file_id TEXT NOT NULL,
        attributes TEXT NOT NULL,
        chunking_strategy TEXT,
        job_id TEXT,
        job_index INTEGER NOT NULL DEFAULT 0,
        batch_id TEXT,
        bytes BIGINT NOT NULL DEFAULT 0,
        sha256 TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (vector_store_id, file_id)
    );
    CREATE INDEX IF NOT EXISTS vector_store_files_by_file ON vector_store_files (file_id);
    CREATE INDEX IF NOT EXISTS vector_store_files_by_batch ON vector_store_files (batch_id);
    CREATE TABLE IF NOT EXISTS vector_store_file_batches (
        id TEXT PRIMARY KEY,
        vector_store_id TEXT NOT NULL,
        job_id TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL
    );
    """,
)

DAY_SECONDS = 86_400
MAX_ATTRIBUTES = 16
MAX_ATTRIBUTE_CHARS = 512
MAX_LIST = 100
MAX_BATCH_FILES = 2000
MIN_CHUNK_TOKENS, MAX_CHUNK_TOKENS = 100, 4096
CHARS_PER_TOKEN = 4  # the splitter counts characters: a token is about four of them
AUTO_CHUNKING = {"type": "static", "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400}}
FileStatusName = Literal["in_progress", "completed", "failed", "cancelled"]
# our error codes -> OpenAI's last_error.code (anything else: server_error)
OPENAI_ERROR_CODES = {
    "unsupported_file_type": "unsupported_file",
    "extraction_failed": "invalid_file",
    "parse_timeout": "invalid_file",
    "payload_too_large": "invalid_file",
}


def new_store_id() -> str:
    return f"vs_{uuid.uuid4().hex[:24]}"


def validate_attributes(attributes: Any) -> dict[str, Any]:
    """A file's attributes (our tags): at most 16 keys, string (≤ 512 characters), number or boolean values."""
    if attributes is None:
        return {}
    if not isinstance(attributes, dict):
        raise InvalidInputError("attributes must be an object of key -> value")
    if len(attributes) > MAX_ATTRIBUTES:
        raise InvalidInputError(f"at most {MAX_ATTRIBUTES} attributes")
    for key, value in attributes.items():
        if key == "file_id":
            raise InvalidInputError("attribute 'file_id' is reserved: every chunk carries its file's id")
        if not isinstance(value, str | int | float | bool) or (isinstance(value, float) and not math.isfinite(value)):
            raise InvalidInputError(f"attribute {key!r} must be a string, number or boolean")
        if isinstance(value, str) and len(value) > MAX_ATTRIBUTE_CHARS:
            raise InvalidInputError(f"attribute {key!r} is longer than {MAX_ATTRIBUTE_CHARS} characters")
    return validate_tags(attributes)


def validate_chunking(strategy: Any) -> dict[str, Any] | None:
    """`{type: auto}` (None: the pipeline's own splitting) or `{type: static, static: {max_chunk_size_tokens,
    chunk_overlap_tokens}}` with a size of 100-4096 tokens and an overlap of at most half of it."""
    if strategy is None:
        return None
    if not isinstance(strategy, dict) or strategy.get("type") not in ("auto", "static"):
        raise InvalidInputError("chunking_strategy must be {type: auto} or {type: static, static: {...}}")
    if strategy["type"] == "auto":
        return None
    static = strategy.get("static")
    if not isinstance(static, dict):
        raise InvalidInputError(
            "a static chunking_strategy needs `static: {max_chunk_size_tokens, chunk_overlap_tokens}`"
        )
    size, overlap = static.get("max_chunk_size_tokens"), static.get("chunk_overlap_tokens")
    if not isinstance(size, int) or isinstance(size, bool) or not MIN_CHUNK_TOKENS <= size <= MAX_CHUNK_TOKENS:
        raise InvalidInputError(f"max_chunk_size_tokens must be an integer of {MIN_CHUNK_TOKENS}-{MAX_CHUNK_TOKENS}")
    if not isinstance(overlap, int) or isinstance(overlap, bool) or not 0 <= overlap <= size // 2:
        raise InvalidInputError("chunk_overlap_tokens must be an integer of 0 to half of max_chunk_size_tokens")
    return {"type": "static", "static": {"max_chunk_size_tokens": size, "chunk_overlap_tokens": overlap}}


def split_of(chunking: dict[str, Any] | None) -> tuple[int, int] | None:
    """A static chunking's token counts as the character-based splitter's (length, overlap): `CHARS_PER_TOKEN`
    characters a token (OpenAI's rule of thumb for English). None: the pipeline's own splitting. The indexing
    pipeline's ChunkSizeGuard still cuts any chunk longer than the embedder keeps."""
    if chunking is None or chunking.get("type") != "static":
        return None
    static = chunking["static"]
    return static["max_chunk_size_tokens"] * CHARS_PER_TOKEN, static["chunk_overlap_tokens"] * CHARS_PER_TOKEN


def validate_expires_after(expires_after: Any) -> int | None:
    """`{anchor: last_active_at, days: 1-365}` -> days (None: never expires)."""
    if expires_after is None:
        return None
    if not isinstance(expires_after, dict) or expires_after.get("anchor") != "last_active_at":
        raise InvalidInputError("expires_after must be {anchor: 'last_active_at', days: n}")
    days = expires_after.get("days")
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 365:
        raise InvalidInputError("expires_after.days must be an integer of 1-365")
    return days


def validate_metadata(metadata: Any) -> dict[str, str]:
    """At most 16 string pairs (keys ≤ 64 characters, values ≤ 512), as OpenAI."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict) or len(metadata) > MAX_ATTRIBUTES:
        raise InvalidInputError(f"metadata must be an object of at most {MAX_ATTRIBUTES} pairs")
    for key, value in metadata.items():
        if not isinstance(key, str) or len(key) > 64 or not isinstance(value, str) or len(value) > 512:
            raise InvalidInputError("metadata keys (≤ 64 characters) and values (≤ 512) must be strings")
    return dict(metadata)


@dataclass
class FileCounts:
    in_progress: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0

    @property
    def total(self) -> int:
        return self.in_progress + self.completed + self.failed + self.cancelled

    def add(self, status: str) -> None:
        setattr(self, status, getattr(self, status) + 1)


@dataclass
class StoreFile:
    """A file attached to a vector store, with its ingestion status."""

    vector_store_id: str
    file_id: str
    attributes: dict[str, Any]
    chunking_strategy: dict[str, Any] | None
    created_at: float
    bytes: int
    status: FileStatusName
    last_error: dict[str, str] | None
    batch_id: str | None


@dataclass
class VectorStoreView:
    id: str
    name: str
    metadata: dict[str, str]
    expires_after_days: int | None
    chunking_strategy: dict[str, Any] | None
    created_at: float
    last_active_at: float
    file_counts: FileCounts = field(default_factory=FileCounts)
    usage_bytes: int = 0
    expires_at: float | None = None
    status: Literal["expired", "in_progress", "completed"] = "completed"


@dataclass
class Batch:
    id: str
    vector_store_id: str
    job_id: str
    created_at: float
    file_counts: FileCounts
    status: FileStatusName


def file_status(job: Job | None, index: int) -> tuple[FileStatusName, dict[str, str] | None]:
    """A vector store file's status and last error from its job file."""
    if job is None or index >= len(job.files):  # the job was swept from history: it had finished
        return "completed", None
    file = job.files[index]
    if file.state in (FileState.QUEUED, FileState.RUNNING):
        return ("cancelled", None) if job.cancel_requested else ("in_progress", None)
    if file.state == FileState.SKIPPED:
        return "cancelled", None
    if file.state == FileState.FAILED or file.status == FileStatus.FAILED:
        code = file.error_code or "extraction_failed"
        return "failed", {
            "code": OPENAI_ERROR_CODES.get(code, "server_error"),
            "message": f"[{code}] {file.error or 'the file could not be indexed'}",
        }
    return "completed", None


class VectorStoreService:
    """Vector stores (collections) with their files and file batches."""

    def __init__(
        self,
        database: StateDatabase,
        *,
        collections: CollectionService,
        files: FileService,
        jobs: JobService,
        documents: DocumentService,
    ) -> None:
        self.db = database
        self.collections = collections
        self.files = files
        self.jobs = jobs
        self.documents = documents

    def _now(self, db: Any) -> float:
        """The database's time (the server's clock on PostgreSQL)."""
        return float(self.db.now(db))

    # ---- stores -----------------------------------------------------------------------------------------------
    def _ensure_rows(self, names: Iterable[str]) -> None:
        """A row for each collection that has none yet (an existing collection seen as a store for the first time)."""
        with self.db.transaction() as db:
            now = self._now(db)
            db.executemany(
                "INSERT INTO vector_stores (id, name, metadata, created_at, last_active_at) VALUES (?, ?, '{}', ?, ?) "
                "ON CONFLICT (id) DO NOTHING",
                [(name, name, now, now) for name in names],
            )

    def _require_exists(self, store_id: str) -> None:
        if not COLLECTION_PATTERN.fullmatch(store_id) or not self.collections.exists(store_id):
            raise NotFoundError(f"vector store {store_id!r} does not exist")

    def create(
        self,
        *,
        name: str | None = None,
        metadata: Any = None,
        expires_after: Any = None,
        chunking_strategy: Any = None,
        file_ids: Sequence[str] = (),
        key: Any = None,
    ) -> VectorStoreView:
        """A new store (a new collection `vs_<hex>`); `file_ids` are attached at once (one job)."""
        meta = validate_metadata(metadata)
        days = validate_expires_after(expires_after)
        chunking = validate_chunking(chunking_strategy)
        attach: builtins.list[tuple[str, dict[str, Any], dict[str, Any] | None]] = [
            (self.files.get(f, key).id, {}, chunking) for f in file_ids
        ]  # 404/403 before anything is created
        store_id = new_store_id()
        self.collections.create(store_id, tenant=getattr(key, "tenant", None))  # the store is the key's tenant's
        with self.db.transaction() as db:
            now = self._now(db)
            db.execute(
                "INSERT INTO vector_stores (id, name, metadata, expires_after_days, chunking_strategy, created_at, "
                "last_active_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (store_id, name or "", json.dumps(meta), days, json.dumps(chunking) if chunking else None, now, now),
            )
        if attach:
            self._attach(store_id, attach, batch_id=None, key=key)
        return self.get(store_id)

    def _view(self, row: Any, now: float) -> VectorStoreView:
        view = VectorStoreView(
            id=row["id"],
            name=row["name"],
            metadata=json.loads(row["metadata"]),
            expires_after_days=row["expires_after_days"],
            chunking_strategy=json.loads(row["chunking_strategy"]) if row["chunking_strategy"] else None,
            created_at=float(row["created_at"]),
            last_active_at=float(row["last_active_at"]),
        )
        for file in self._store_files(view.id):
            view.file_counts.add(file.status)
            view.usage_bytes += file.bytes
        if view.expires_after_days is not None:
            view.expires_at = view.last_active_at + view.expires_after_days * DAY_SECONDS
        if view.expires_at is not None and view.expires_at <= now:
            view.status = "expired"
        elif view.file_counts.in_progress:
            view.status = "in_progress"
        return view

    def get(self, store_id: str) -> VectorStoreView:
        """The store; 404 when no such collection exists."""
        self._require_exists(store_id)
        self._ensure_rows([store_id])
        with self.db.connect() as db:
            row = db.execute("SELECT * FROM vector_stores WHERE id = ?", (store_id,)).fetchone()
            now = self._now(db)
        return self._view(row, now)

    def list(
        self,
        *,
        within: frozenset[str] | None = None,
        visible: Callable[[str], bool] | None = None,
        limit: int = 20,
        order: Order = "desc",
        after: str | None = None,
        before: str | None = None,
    ) -> tuple[builtins.list[VectorStoreView], bool]:
        """A page of the stores (collections) `within` (None: all) that are `visible` (a key's tenant boundary), by
        creation time; and whether more follow."""
        if not 1 <= limit <= MAX_LIST:
            raise InvalidInputError(f"limit must be between 1 and {MAX_LIST}")
        names = [
            n for n in self.collections.names() if (within is None or n in within) and (visible is None or visible(n))
        ]
        self._ensure_rows(names)
        with self.db.connect() as db:
            rows = db.execute("SELECT * FROM vector_stores").fetchall()
            now = self._now(db)
        wanted = set(names)
        rows = sorted(
            (r for r in rows if r["id"] in wanted),
            key=lambda r: (float(r["created_at"]), r["id"]),
            reverse=order == "desc",
        )
        ids = [r["id"] for r in rows]
        if after is not None and after in ids:
            rows = rows[ids.index(after) + 1 :]
        elif before is not None and before in ids:
            rows = rows[: ids.index(before)]
        return [self._view(r, now) for r in rows[:limit]], len(rows) > limit

    def modify(
        self, store_id: str, *, name: str | None = None, metadata: Any = None, expires_after: Any = ..., **_: Any
    ) -> VectorStoreView:
        """Change the name, metadata or expiry (`expires_after=None` removes it; left out: unchanged)."""
        self._require_exists(store_id)
        self._ensure_rows([store_id])
        with self.db.transaction() as db:
            if name is not None:
                db.execute("UPDATE vector_stores SET name = ? WHERE id = ?", (name, store_id))
            if metadata is not None:
                db.execute(
                    "UPDATE vector_stores SET metadata = ? WHERE id = ?",
                    (json.dumps(validate_metadata(metadata)), store_id),
                )
            if expires_after is not ...:
                days = validate_expires_after(expires_after)
                db.execute(
                    "UPDATE vector_stores SET expires_after_days = ?, last_active_at = ? WHERE id = ?",
                    (days, self._now(db), store_id),
                )
        return self.get(store_id)

    def delete(self, store_id: str) -> None:
        """Drop the store's collection (its chunks, its jobs) and forget its files and batches (the files stay)."""
        self.collections.drop(store_id)
        with self.db.transaction() as db:
            db.execute("DELETE FROM vector_store_files WHERE vector_store_id = ?", (store_id,))
            db.execute("DELETE FROM vector_store_file_batches WHERE vector_store_id = ?", (store_id,))
            db.execute("DELETE FROM vector_stores WHERE id = ?", (store_id,))

    def touch(self, store_id: str) -> None:
        """Record activity (a search, a response using it): `last_active_at` moves to now (its expiry with it)."""
        self._require_exists(store_id)
        with self.db.transaction() as db:
            now = self._now(db)
            db.execute(
                "INSERT INTO vector_stores (id, name, metadata, created_at, last_active_at) VALUES (?, ?, '{}', ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET last_active_at = excluded.last_active_at",
                (store_id, store_id, now, now),
            )

    def drop_expired(self) -> builtins.list[str]:
        """Delete every store whose expiry passed (for a periodic sweep; reads refuse them anyway); their ids."""
        with self.db.connect() as db:
            now = self._now(db)
            rows = db.execute(
                "SELECT id, expires_after_days, last_active_at FROM vector_stores WHERE expires_after_days IS NOT NULL"
            ).fetchall()
        dropped = []
        for row in rows:
            if float(row["last_active_at"]) + int(row["expires_after_days"]) * DAY_SECONDS > now:
                continue
            try:
                self.delete(row["id"])
            except NotFoundError:  # its collection is gone already: forget the rest
                with self.db.transaction() as db:
                    db.execute("DELETE FROM vector_store_files WHERE vector_store_id = ?", (row["id"],))
                    db.execute("DELETE FROM vector_store_file_batches WHERE vector_store_id = ?", (row["id"],))
                    db.execute("DELETE FROM vector_stores WHERE id = ?", (row["id"],))
            dropped.append(row["id"])
        return dropped

    def check_active(self, store_id: str) -> None:
        """404 when the store does not exist, 400 when it expired (it can no longer be searched)."""
        if self.get(store_id).status == "expired":
            raise InvalidInputError(f"vector store {store_id!r} has expired")

    # ---- files ------------------------------------------------------------------------------------------------
    def _store_files(
        self, store_id: str, *, batch_id: str | None = None, file_id: str | None = None
    ) -> builtins.list[StoreFile]:
        sql = "SELECT * FROM vector_store_files WHERE vector_store_id = ?"
        params: list[Any] = [store_id]
        if batch_id is not None:
            sql += " AND batch_id = ?"
            params.append(batch_id)
        if file_id is not None:
            sql += " AND file_id = ?"
            params.append(file_id)
        with self.db.connect() as db:
            rows = db.execute(sql + " ORDER BY created_at, file_id", params).fetchall()
        jobs: dict[str, Job | None] = {}
        out = []
        for row in rows:
            job_id = row["job_id"]
            if job_id and job_id not in jobs:
                try:
                    jobs[job_id] = self.jobs.get(job_id)
                except NotFoundError:
                    jobs[job_id] = None
            status, error = file_status(jobs.get(job_id) if job_id else None, int(row["job_index"]))
            out.append(
                StoreFile(
                    vector_store_id=row["vector_store_id"],
                    file_id=row["file_id"],
                    attributes=json.loads(row["attributes"]),
                    chunking_strategy=json.loads(row["chunking_strategy"]) if row["chunking_strategy"] else None,
                    created_at=float(row["created_at"]),
                    bytes=int(row["bytes"]),
                    status=status,
                    last_error=error,
                    batch_id=row["batch_id"],
                )
            )
        return out

    def stores_of_file(self, file_id: str) -> builtins.list[str]:
        """The stores a file is attached to (the scope of a restricted key's files)."""
        with self.db.connect() as db:
            rows = db.execute("SELECT vector_store_id FROM vector_store_files WHERE file_id = ?", (file_id,)).fetchall()
        return [r["vector_store_id"] for r in rows]

    def files_within(self, stores: frozenset[str]) -> builtins.list[str]:
        """The ids of the files attached to any of `stores`."""
        if not stores:
            return []
        marks = ", ".join("?" * len(stores))
        with self.db.connect() as db:
            rows = db.execute(
                f"SELECT DISTINCT file_id FROM vector_store_files WHERE vector_store_id IN ({marks})", sorted(stores)
            ).fetchall()
        return [r["file_id"] for r in rows]

    def _attach(
        self,
        store_id: str,
        files: Sequence[tuple[str, dict[str, Any], dict[str, Any] | None]],
        *,
        batch_id: str | None,
        key: Any,
    ) -> Job:
        """One ingestion job of `files` (id, attributes, chunking) into the store's collection; their rows point at
        it."""
        stored = [(self.files.get(file_id, key), attributes, chunking) for file_id, attributes, chunking in files]
        limit = self.files.max_bytes

        def uploads() -> Iterable[UploadedFile]:
            for file, attributes, chunking in stored:
                data = self.files.content(file.id)[1] if file.bytes <= limit else None
                yield UploadedFile(
                    filename=file.filename,
                    content_type=None,
                    data=data,
                    error=None if data is not None else f"file is larger than {limit // (1024 * 1024)} MiB",
                    error_code=None if data is not None else "payload_too_large",
                    tags={**attributes, "file_id": file.id},
                    split=split_of(chunking),
                )

        job = self.jobs.submit(store_id, {}, uploads())
        with self.db.transaction() as db:
            now = self._now(db)
            db.executemany(
                "INSERT INTO vector_store_files (vector_store_id, file_id, attributes, chunking_strategy, job_id, "
                "job_index, batch_id, bytes, sha256, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (vector_store_id, file_id) DO UPDATE SET attributes = excluded.attributes, "
                "chunking_strategy = excluded.chunking_strategy, job_id = excluded.job_id, "
                "job_index = excluded.job_index, batch_id = excluded.batch_id",
                [
                    (
                        store_id,
                        file.id,
                        json.dumps(attributes),
                        json.dumps(chunking) if chunking else None,
                        job.id,
                        index,
                        batch_id,
                        file.bytes,
                        file.sha256,
                        now,
                    )
                    for index, (file, attributes, chunking) in enumerate(stored)
                ],
            )
            db.execute("UPDATE vector_stores SET last_active_at = ? WHERE id = ?", (now, store_id))
        return job

    def _store_chunking(self, store_id: str, chunking_strategy: Any) -> dict[str, Any] | None:
        chunking = validate_chunking(chunking_strategy)
        if chunking is not None or chunking_strategy is not None:
            return chunking
        with self.db.connect() as db:
            row = db.execute("SELECT chunking_strategy FROM vector_stores WHERE id = ?", (store_id,)).fetchone()
        return json.loads(row["chunking_strategy"]) if row is not None and row["chunking_strategy"] else None

    def attach(
        self, store_id: str, file_id: str, *, attributes: Any = None, chunking_strategy: Any = None, key: Any = None
    ) -> StoreFile:
        """Attach a file (index it into the store's collection with its attributes)."""
        self._require_exists(store_id)
        self._ensure_rows([store_id])
        clean = validate_attributes(attributes)
        chunking = self._store_chunking(store_id, chunking_strategy)
        self._attach(store_id, [(file_id, clean, chunking)], batch_id=None, key=key)
        return self.get_file(store_id, file_id)

    def get_file(self, store_id: str, file_id: str) -> StoreFile:
        self._require_exists(store_id)
        found = self._store_files(store_id, file_id=file_id)
        if not found:
            raise NotFoundError(f"file {file_id!r} is not in vector store {store_id!r}")
        return found[0]

    def list_files(
        self,
        store_id: str,
        *,
        batch_id: str | None = None,
        status: str | None = None,
        limit: int = 20,
        order: Order = "desc",
        after: str | None = None,
        before: str | None = None,
    ) -> tuple[builtins.list[StoreFile], bool]:
        """A page of the store's files (of one batch, in one status), by attachment time; and whether more follow."""
        if not 1 <= limit <= MAX_LIST:
            raise InvalidInputError(f"limit must be between 1 and {MAX_LIST}")
        self._require_exists(store_id)
        files = [f for f in self._store_files(store_id, batch_id=batch_id) if status is None or f.status == status]
        files.sort(key=lambda f: (f.created_at, f.file_id), reverse=order == "desc")
        ids = [f.file_id for f in files]
        if after is not None and after in ids:
            files = files[ids.index(after) + 1 :]
        elif before is not None and before in ids:
            files = files[: ids.index(before)]
        return files[:limit], len(files) > limit

    def update_file(self, store_id: str, file_id: str, attributes: Any) -> StoreFile:
        """New attributes: the file is indexed again with them (its chunks carry the attributes as tags)."""
        clean = validate_attributes(attributes)
        current = self.get_file(store_id, file_id)
        self._remove_chunks(store_id, file_id)
        self._attach(store_id, [(file_id, clean, current.chunking_strategy)], batch_id=current.batch_id, key=None)
        return self.get_file(store_id, file_id)

    def _remove_chunks(self, store_id: str, file_id: str) -> None:
        with self.db.connect() as db:
            row = db.execute(
                "SELECT sha256 FROM vector_store_files WHERE vector_store_id = ? AND file_id = ?", (store_id, file_id)
            ).fetchone()
            twins = db.execute(
                "SELECT COUNT(*) FROM vector_store_files WHERE vector_store_id = ? AND sha256 = ?",
                (store_id, row["sha256"] if row else ""),
            ).fetchone()[0]
        if row is None or int(twins) > 1:  # another file of the store has the same bytes: one document, kept
            return
        try:
            self.documents.delete(document_id_for(store_id, row["sha256"]))
        except NotFoundError:  # never indexed (failed, cancelled or still queued)
            pass

    def detach(self, store_id: str, file_id: str) -> None:
        """Remove the file from the store: its chunks go, the file stays."""
        current = self.get_file(store_id, file_id)
        if current.status == "in_progress":
            with self.db.connect() as db:
                row = db.execute(
                    "SELECT job_id FROM vector_store_files WHERE vector_store_id = ? AND file_id = ?",
                    (store_id, file_id),
                ).fetchone()
            try:
                self.jobs.cancel(row["job_id"])
            except (ConflictError, NotFoundError):
                pass
        self._remove_chunks(store_id, file_id)
        with self.db.transaction() as db:
            db.execute("DELETE FROM vector_store_files WHERE vector_store_id = ? AND file_id = ?", (store_id, file_id))

    # ---- batches ----------------------------------------------------------------------------------------------
    def create_batch(
        self,
        store_id: str,
        *,
        file_ids: Sequence[str] | None = None,
        files: Sequence[dict[str, Any]] | None = None,
        attributes: Any = None,
        chunking_strategy: Any = None,
        key: Any = None,
    ) -> Batch:
        """Attach several files as ONE ingestion job (`file_ids` with shared attributes, or `files` each with its
        own)."""
        self._require_exists(store_id)
        self._ensure_rows([store_id])
        if (file_ids is None) == (files is None):
            raise InvalidInputError("give either file_ids or files")
        chunking = self._store_chunking(store_id, chunking_strategy)
        entries: builtins.list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []
        if files is not None:  # each file with its own attributes and chunking (the store's when it has none)
            for entry in files:
                if not isinstance(entry, dict) or not isinstance(entry.get("file_id"), str):
                    raise InvalidInputError("each of files needs a file_id")
                own = self._store_chunking(store_id, entry.get("chunking_strategy"))
                entries.append((entry["file_id"], validate_attributes(entry.get("attributes")), own))
        else:
            shared = validate_attributes(attributes)
            entries = [(file_id, shared, chunking) for file_id in file_ids or ()]
        if not 1 <= len(entries) <= MAX_BATCH_FILES:
            raise InvalidInputError(f"a batch holds 1-{MAX_BATCH_FILES} files")
        if len({entry[0] for entry in entries}) != len(entries):
            raise InvalidInputError("a file appears twice in the batch")
        batch_id = f"vsfb_{uuid.uuid4().hex[:24]}"
        job = self._attach(store_id, entries, batch_id=batch_id, key=key)
        with self.db.transaction() as db:
            db.execute(
                "INSERT INTO vector_store_file_batches (id, vector_store_id, job_id, created_at) VALUES (?, ?, ?, ?)",
                (batch_id, store_id, job.id, self._now(db)),
            )
        return self.get_batch(store_id, batch_id)

    def get_batch(self, store_id: str, batch_id: str) -> Batch:
        self._require_exists(store_id)
        with self.db.connect() as db:
            row = db.execute(
                "SELECT * FROM vector_store_file_batches WHERE id = ? AND vector_store_id = ?", (batch_id, store_id)
            ).fetchone()
        if row is None:
            raise NotFoundError(f"file batch {batch_id!r} is not in vector store {store_id!r}")
        counts = FileCounts()
        for file in self._store_files(store_id, batch_id=batch_id):
            counts.add(file.status)
        try:
            cancelled = self.jobs.get(row["job_id"]).cancel_requested
        except NotFoundError:
            cancelled = False
        status: FileStatusName = "completed"
        if counts.in_progress:
            status = "in_progress"
        elif cancelled or (counts.cancelled and not counts.completed):
            status = "cancelled"
        elif counts.failed and not counts.completed:
            status = "failed"
        return Batch(row["id"], store_id, row["job_id"], float(row["created_at"]), counts, status)

    def cancel_batch(self, store_id: str, batch_id: str) -> Batch:
        """Cancel the batch's job (files not yet indexed are cancelled; a finished batch is left as it is)."""
        batch = self.get_batch(store_id, batch_id)
        try:
            self.jobs.cancel(batch.job_id)
        except (ConflictError, NotFoundError):
            pass
        return self.get_batch(store_id, batch_id)
