"""What a sync source is, what a run records, and the one spelling of every kind and outcome.

The enums are bound as SQL parameters by the store and used as field types by the API schemas (so the OpenAPI schema
lists their values).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from enum import StrEnum

from app.errors import InvalidInputError

SOURCE_ID = re.compile(r"src_[0-9a-f]{24}")
PRINCIPAL = re.compile(r"(user|group):[A-Za-z0-9_.@-]{1,128}")
MAX_PRINCIPALS = 100


def new_source_id() -> str:
    """`src_<24 hex>`."""
    return f"src_{secrets.token_hex(12)}"


def check_principals(access: list[str] | None) -> list[str] | None:
    """A source's `access`, sorted and without repeats: `user:<name>` / `group:<name>` principals (None: no list).

    :raises InvalidInputError: a malformed principal, or too many.
    """
    if access is None:
        return None
    if len(access) > MAX_PRINCIPALS:
        raise InvalidInputError(f"at most {MAX_PRINCIPALS} principals")
    for principal in access:
        if not isinstance(principal, str) or not PRINCIPAL.fullmatch(principal):
            raise InvalidInputError(f"invalid principal {principal!r}: use user:<name> or group:<name>")
    return sorted(set(access))


class SourceKind(StrEnum):
    """Where a source's files come from."""

    FOLDER = "folder"  # a folder under one of RAG_SYNC_ROOTS, walked recursively
    S3 = "s3"  # the objects under `s3://bucket/prefix` (a bucket of RAG_SYNC_S3_BUCKETS)
    URLS = "urls"  # a list of http(s) URLs


class Outcome(StrEnum):
    """What a run did with one entry of the source."""

    ADDED = "added"  # new in the source: ingested
    UPDATED = "updated"  # its content changed: ingested again (a new version of the document)
    UNCHANGED = "unchanged"  # same metadata, or same content: nothing written
    REMOVED = "removed"  # gone from the source: its document removed
    FAILED = "failed"  # could not be read or ingested (retried by the next run)


class RunTrigger(StrEnum):
    """Who started a run."""

    MANUAL = "manual"  # `POST /sources/{id}/runs`, `rag sync run`
    SCHEDULE = "schedule"  # the source's interval came round (the API's scheduler, `rag sync --due`)


@dataclass
class Source:
    """A registered source: `location` is a folder path, an `s3://bucket/prefix` URL, or (kind `urls`) the URLs."""

    id: str
    collection: str
    kind: SourceKind
    location: str | list[str]
    include: list[str]
    exclude: list[str]
    interval_seconds: int | None  # None: runs only when asked for
    access: list[str] | None  # principals passed to every document the source ingests
    enabled: bool
    created_at: float
    updated_at: float
    last_run_at: float | None = None
    next_run_at: float | None = None
    active_run: str | None = None  # the run (a job id) holding the source's claim: at most one run at a time


@dataclass
class Listed:
    """An entry as the source lists it: its key (relative path, object key, URL) and the metadata compared before any
    download (`etag`, `mtime`, `size`; None when the source does not say)."""

    key: str
    etag: str | None = None
    mtime: float | None = None
    size: int | None = None


@dataclass
class Fetched:
    """An entry's content and the metadata that came with it."""

    data: bytes
    etag: str | None = None
    mtime: float | None = None
    content_type: str | None = None


@dataclass
class SourceEntry:
    """What the last successful ingest of an entry recorded: the metadata compared next time, its content hash and its
    document."""

    key: str
    etag: str | None
    mtime: float | None
    size: int | None
    content_hash: str
    document_id: str | None
    version: int
    status: str  # the ingest's status: indexed, updated, unchanged, duplicate
    last_seen_run: str | None


@dataclass
class RunEntry:
    """One entry's outcome in a run."""

    key: str
    outcome: Outcome
    status: str | None = None  # the ingest's status when it ran (indexed, updated, unchanged, duplicate, failed)
    document_id: str | None = None
    error: str | None = None
    error_code: str | None = None
    at: float = 0.0


@dataclass
class SyncRun:
    """A run of a source: its job (the same id), why it started, when, and its counts per outcome."""

    id: str
    source_id: str
    collection: str
    trigger: RunTrigger
    state: str  # the job's state (queued, parsing, done, failed, cancelled) as last recorded by the run
    error: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    counts: dict[str, int] = field(default_factory=dict)
