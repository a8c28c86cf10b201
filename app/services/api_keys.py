"""API keys: created and revoked by an admin (REST or `rag keys`), stored hashed, scoped to collections.

A key reads `rag_<id>_<secret>`: the id finds the row, the secret is never stored (only a SHA-256 of the whole key;
keys are 256-bit random, so a fast hash is the right one) and is compared in constant time. The table lives in the
deployment's state database (`app.state`): SQLite under RAG_DATA_DIR on one host, PostgreSQL (RAG_STATE_URL) when
several hosts share it, so a key revoked through one replica is refused by every other at its next request.

The first admin key comes either from RAG_ADMIN_KEY (`ensure_admin_key`: stored hashed at every start, idempotent
across replicas) or, without it, from the first start (`bootstrap_admin_key`: written to `admin.key`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from app.errors import InvalidInputError, NotFoundError, PermissionDeniedError
from app.services.access import EVERYONE, validate_principals
from app.services.naming import validate_collection
from app.sqlite import SQLiteDatabase
from app.state import StateDatabase

KEY_PATTERN = re.compile(r"^rag_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
ADMIN_KEY_NAME = "RAG_ADMIN_KEY"  # the setting `admin_key`
KEY_FORMAT = "rag_<12 lowercase hex>_<43 characters of A-Z a-z 0-9 _ ->"
TENANT_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")  # always with fullmatch, like a collection name
ALL_COLLECTIONS = "*"
_DUMMY_HASH = hashlib.sha256(b"no such key").hexdigest()  # compared against when the id is unknown: same timing

# Append-only schema steps (`app.sqlite`); step 1 is the first release's table, so its auth.db opens unchanged.
MIGRATIONS = (
    """
    CREATE TABLE IF NOT EXISTS api_keys (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        collections TEXT NOT NULL,
        key_hash TEXT NOT NULL,
        created_at TEXT NOT NULL,
        revoked_at TEXT
    );
    """,
    """
    ALTER TABLE api_keys ADD COLUMN principals TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE api_keys ADD COLUMN tenant TEXT;
    """,
)
SQLITE_MIGRATIONS = MIGRATIONS
# PostgreSQL's steps (its own list, from the current schema on; `app.postgres`).
POSTGRES_MIGRATIONS = (
    """
    CREATE TABLE IF NOT EXISTS api_keys (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        collections TEXT NOT NULL,
        key_hash TEXT NOT NULL,
        created_at TEXT NOT NULL,
        revoked_at TEXT
    );
    """,
    """
    ALTER TABLE api_keys ADD COLUMN principals TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE api_keys ADD COLUMN tenant TEXT;
    """,
)
_EVERY_DOCUMENT = json.dumps([EVERYONE])  # the principals of RAG_ADMIN_KEY and the bootstrap admin key
_COLUMNS = "id, name, role, collections, created_at, revoked_at, principals, tenant"


class Role(StrEnum):
    """Each role can do what the roles before it can: reader < writer < admin."""

    READER = "reader"  # query, list collections and documents
    WRITER = "writer"  # + upload and delete documents
    ADMIN = "admin"  # + create and drop collections, create and revoke keys

    @property
    def rank(self) -> int:
        return list(Role).index(self)


def validate_tenant(tenant: str) -> str:
    """`tenant` if it is 1-64 of A-Z a-z 0-9 _ - (like a collection name), else InvalidInputError."""
    if not isinstance(tenant, str) or not TENANT_PATTERN.fullmatch(tenant):
        raise InvalidInputError("a tenant is 1-64 characters of A-Z a-z 0-9 _ -")
    return tenant


@dataclass(frozen=True)
class TenantBoundary:
    """The collections on a key's side of its tenant boundary, read from the collections table when the request is
    authenticated: `only` those `names` (a tenant's key: the collections of its tenant), or every collection but
    those `names` (a key without tenant that is not an admin: `names` are the collections of any tenant)."""

    names: frozenset[str]
    only: bool

    def contains(self, collection: str) -> bool:
        return (collection in self.names) == self.only


@dataclass(frozen=True)
class ApiKey:
    """A stored key (never its secret). `collections` None means every collection."""

    id: str
    name: str
    role: Role
    collections: frozenset[str] | None
    created_at: str
    revoked_at: str | None = None
    principals: frozenset[str] = frozenset()  # whose documents it reads (`user:…`, `group:…`, `*` for every one)
    tenant: str | None = None  # the tenant it belongs to (None: the operator's keys)
    # the collections within its tenant, set per request (`CollectionService.bound`); None for the operator admin
    boundary: TenantBoundary | None = field(default=None, compare=False, repr=False)

    @property
    def prefix(self) -> str:
        """The non-secret part of the key, safe to show and log."""
        return f"rag_{self.id}"

    def has_role(self, role: Role) -> bool:
        return self.role.rank >= role.rank

    @property
    def is_operator(self) -> bool:
        """An admin key without tenant: the deployment's operator, above every tenant."""
        return self.tenant is None and self.has_role(Role.ADMIN)

    def within_tenant(self, collection: str) -> bool:
        """True when `collection` lies on this key's side of the tenant boundary (a key of a tenant whose boundary was
        not read sees none: fail closed)."""
        if self.boundary is None:
            return self.tenant is None
        return self.boundary.contains(collection)

    def listing_scope(self) -> tuple[frozenset[str] | None, frozenset[str] | None]:
        """`(within, excluding)` for a listing of state rows by collection: only those `within` (None: any), none of
        those `excluding` (None: none). The key's collection scope, narrowed by its tenant boundary."""
        boundary = self.boundary
        if boundary is None:
            return self.collections, None
        if not boundary.only:
            return self.collections, boundary.names
        within = boundary.names if self.collections is None else self.collections & boundary.names
        return within, None

    def allows(self, collection: str) -> bool:
        return (self.collections is None or collection in self.collections) and self.within_tenant(collection)

    def require(
        self, role: Role, collection: str | None = None, *, noun: str = "collection", creating: bool = False
    ) -> None:
        """Raise PermissionDeniedError unless this key has `role` (and may use `collection`). A collection beyond the
        key's tenant is NotFoundError, worded as for one that does not exist (`noun`: what the caller calls it).
        `creating`: the route creates the collection when it does not exist; the collections service then checks the
        name (`CollectionService.claim`/`create`: 409 when another tenant holds it, as for any name that exists)."""
        if not self.has_role(role):
            raise PermissionDeniedError(f"this API key has role {self.role.value!r}; {role.value!r} is needed")
        if collection is not None and self.collections is not None and collection not in self.collections:
            raise PermissionDeniedError(f"this API key may not use collection {collection!r}")
        if collection is not None and not creating and not self.within_tenant(collection):
            raise NotFoundError(f"{noun} {collection!r} does not exist")

    def covers(self, other: ApiKey | frozenset[str] | None) -> bool:
        """True when every collection of `other` (a key or a scope) is within this key's scope."""
        scope = other.collections if isinstance(other, ApiKey) else other
        if self.collections is None:
            return True
        return scope is not None and scope <= self.collections


DEV_KEY = ApiKey(
    id="dev", name="dev mode", role=Role.ADMIN, collections=None, created_at="", principals=frozenset({"*"})
)


def parse_scope(collections: list[str] | None) -> frozenset[str] | None:
    """`["*"]` (or nothing) is every collection; otherwise validated collection names."""
    if not collections or ALL_COLLECTIONS in collections:
        if collections and len(collections) > 1:
            raise InvalidInputError("'*' (every collection) cannot be combined with collection names")
        return None
    return frozenset(validate_collection(c) for c in collections)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_key() -> tuple[str, str]:
    """A fresh key id and the whole key (`rag_<id>_<secret>`), not stored anywhere."""
    key_id = secrets.token_hex(6)
    return key_id, f"rag_{key_id}_{secrets.token_urlsafe(32)}"


class AdminKeyError(RuntimeError):
    """RAG_ADMIN_KEY cannot be used: malformed, or its id is stored with another secret. The service does not start."""


def bootstrap_admin_key(keys: KeyStore, path: Path) -> Path | None:
    """First start with no key at all: create an admin key and write it to `path` (mode 600), else None."""
    created = keys.create(
        name="bootstrap admin", role=Role.ADMIN, collections=None, only_if_empty=True, principals=[EVERYONE]
    )
    if created is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(created[1] + "\n")
    return path


class KeyStore:
    """The `api_keys` table of the state database (one short connection per call: safe across threads, processes and,
    on PostgreSQL, hosts)."""

    def __init__(self, database: Path | StateDatabase) -> None:
        """`database`: the state database (`app.state.state_database` with this module's migrations), or the path of
        a SQLite file (opened with `SQLITE_MIGRATIONS`)."""
        if isinstance(database, Path):
            database = SQLiteDatabase(database, migrations=SQLITE_MIGRATIONS, timeout=10.0)
        self.db: StateDatabase = database

    @staticmethod
    def _row(row: Any) -> ApiKey:
        scope = json.loads(row["collections"])
        return ApiKey(
            id=row["id"],
            name=row["name"],
            role=Role(row["role"]),
            collections=None if scope == [ALL_COLLECTIONS] else frozenset(scope),
            created_at=row["created_at"],
            revoked_at=row["revoked_at"],
            principals=frozenset(json.loads(row["principals"] or "[]")),
            tenant=row["tenant"],
        )

    def create(
        self,
        *,
        name: str,
        role: Role,
        collections: frozenset[str] | None,
        only_if_empty: bool = False,
        principals: list[str] | None = None,
        tenant: str | None = None,
    ) -> tuple[ApiKey, str] | None:
        """A new key and its secret (shown once), of `tenant` (None: the operator's). With `only_if_empty`, None when
        any key exists already (checked and inserted under the table's write lock: one bootstrap wins across processes
        and hosts). `principals`: whose documents it reads (`app.services.access`: `user:…`, `group:…`, `*`; none by
        default: public documents only)."""
        if not name or len(name) > 100:
            raise InvalidInputError("a key name is 1-100 characters")
        held = validate_principals(principals, allow_everyone=True)
        if tenant is not None:
            validate_tenant(tenant)
        key_id, secret = new_key()
        record = ApiKey(
            id=key_id,
            name=name,
            role=role,
            collections=collections,
            created_at=_now(),
            principals=frozenset(held),
            tenant=tenant,
        )
        scope = [ALL_COLLECTIONS] if collections is None else sorted(collections)
        with self.db.transaction() as db:  # SQLite: BEGIN IMMEDIATE serializes the bootstrap between processes
            if only_if_empty:
                if self.db.dialect == "postgres":  # writers wait, readers (authentication) do not
                    db.execute("LOCK TABLE api_keys IN EXCLUSIVE MODE")
                if db.execute("SELECT 1 FROM api_keys LIMIT 1").fetchone():
                    return None
            db.execute(
                "INSERT INTO api_keys (id, name, role, collections, key_hash, created_at, principals, tenant) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key_id,
                    name,
                    role.value,
                    json.dumps(scope),
                    hash_key(secret),
                    record.created_at,
                    json.dumps(held),
                    tenant,
                ),
            )
        return record, secret

    def ensure_admin_key(self, presented: str, *, variable: str = ADMIN_KEY_NAME) -> ApiKey:
        """Store `presented` (from `variable`) hashed as an admin key for every collection, once: its id is the key's
        own id part, inserted with `ON CONFLICT DO NOTHING`, so replicas starting together with the same secret all
        succeed. A revoked key stays revoked (returned as such). It reads every document (principals `["*"]`, written
        at every start, so a key stored before principals existed gets them too).

        :raises AdminKeyError: the value is not a well-formed key, or its id is stored with another secret.
        """
        match = KEY_PATTERN.fullmatch(presented)
        if match is None:
            raise AdminKeyError(
                f"{variable} is not a well-formed API key: expected {KEY_FORMAT} (create one with `rag keys generate`)"
            )
        key_id = match.group(1)
        digest = hash_key(presented)
        with self.db.connect() as db:
            db.execute(
                "INSERT INTO api_keys (id, name, role, collections, key_hash, created_at, principals) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                (key_id, variable, Role.ADMIN.value, json.dumps([ALL_COLLECTIONS]), digest, _now(), _EVERY_DOCUMENT),
            )
            db.execute(  # only the row of this very secret (another secret with this id is refused below)
                "UPDATE api_keys SET principals = ? WHERE id = ? AND key_hash = ? AND principals <> ?",
                (_EVERY_DOCUMENT, key_id, digest, _EVERY_DOCUMENT),
            )
            row = db.execute(f"SELECT {_COLUMNS}, key_hash FROM api_keys WHERE id = ?", (key_id,)).fetchone()
        if row is None or not hmac.compare_digest(row["key_hash"], digest):
            raise AdminKeyError(
                f"{variable} has the id rag_{key_id} of a stored key with another secret: set the key that was "
                "created with that id, or a new one (`rag keys generate`)"
            )
        return self._row(row)

    def list(self, *, include_revoked: bool = False) -> list[ApiKey]:
        sql = f"SELECT {_COLUMNS} FROM api_keys"
        if not include_revoked:
            sql += " WHERE revoked_at IS NULL"
        with self.db.connect() as db:
            return [self._row(r) for r in db.execute(sql + " ORDER BY created_at, id").fetchall()]

    def get(self, key_id: str) -> ApiKey:
        with self.db.connect() as db:
            row = db.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE id = ?", (key_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"API key {key_id!r} does not exist")
        return self._row(row)

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke at once (every process, on every host, checks the table on each request); 404 for an unknown id."""
        with self.db.connect() as db:
            db.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (_now(), key_id))
        return self.get(key_id)

    def authenticate(self, presented: str) -> ApiKey | None:
        """The active key matching `presented`, else None; the secret comparison is constant-time."""
        match = KEY_PATTERN.fullmatch(presented)
        row = None
        if match:
            with self.db.connect() as db:
                row = db.execute(
                    f"SELECT {_COLUMNS}, key_hash FROM api_keys WHERE id = ?", (match.group(1),)
                ).fetchone()
        expected = row["key_hash"] if row else _DUMMY_HASH
        if not hmac.compare_digest(hash_key(presented), expected) or row is None:
            return None
        key = self._row(row)
        return None if key.revoked_at else key
