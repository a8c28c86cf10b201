"""Request and response models of `/sources` (sync sources and their runs)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from app.jobs.models import JobState
from app.sync.models import Outcome, RunTrigger, SourceKind

Glob = Annotated[str, Field(min_length=1, max_length=512)]
Location = Annotated[str, Field(min_length=1, max_length=2048)]


class SourceCreate(BaseModel):
    collection: str = Field(
        pattern=r"^[A-Za-z0-9_-]{1,64}$", description="The collection the source's documents go into."
    )
    kind: SourceKind = Field(description="folder, s3 or urls.")
    location: Location | Annotated[list[Location], Field(min_length=1, max_length=10_000)] = Field(
        description="folder: a path under one of RAG_SYNC_ROOTS (absolute, or relative to the first root); s3: "
        "`s3://bucket/prefix` with the bucket in RAG_SYNC_S3_BUCKETS; urls: a list of http(s) URLs.",
        examples=["team-docs", ["https://example.com/handbook.html"]],
    )
    include: list[Glob] = Field(
        default=[],
        max_length=50,
        description="Globs on the entry's key (relative path, object key below the "
        "prefix, URL path); none: every entry. A glob without `/` matches the last part (`*.pdf`).",
    )
    exclude: list[Glob] = Field(default=[], max_length=50, description="Globs of entries to leave out.")
    interval_seconds: int | None = Field(
        default=None, ge=60, le=366 * 86_400, description="Run every this many seconds; null: only when asked for."
    )
    access: list[str] | None = Field(
        default=None,
        max_length=100,
        description="Principals (`user:<name>`, `group:<name>`) given to every document of the source; null: "
        "visible to every key of the collection.",
    )
    enabled: bool = Field(default=True, description="A disabled source is not run on its interval.")


class SourceUpdate(BaseModel):
    """The fields to change (absent: unchanged; `interval_seconds: null` makes the source manual)."""

    location: Location | Annotated[list[Location], Field(min_length=1, max_length=10_000)] | None = None
    include: list[Glob] | None = Field(default=None, max_length=50)
    exclude: list[Glob] | None = Field(default=None, max_length=50)
    interval_seconds: int | None = Field(default=None, ge=60, le=366 * 86_400)
    access: list[str] | None = Field(default=None, max_length=100)
    enabled: bool | None = None


class SourceOut(BaseModel):
    id: str = Field(examples=["src_0123456789abcdef01234567"])
    collection: str
    kind: SourceKind
    location: str | list[str]
    include: list[str]
    exclude: list[str]
    interval_seconds: int | None
    access: list[str] | None
    enabled: bool
    created_at: float = Field(description="Unix time.")
    updated_at: float
    last_run_at: float | None = Field(description="When its last run was started.")
    next_run_at: float | None = Field(description="When its interval queues the next run (null: manual).")
    active_run: str | None = Field(description="The run holding the source (queued or running), if any.")


class SourcePage(BaseModel):
    total: int
    offset: int
    limit: int
    sources: list[SourceOut]


class RunEntryOut(BaseModel):
    key: str = Field(description="The entry: a relative path, an object key below the prefix, or a URL.")
    outcome: Outcome
    status: str | None = Field(
        default=None, description="The ingest's status when it ran: indexed, updated, unchanged, duplicate."
    )
    document_id: str | None = None
    error: str | None = None
    error_code: str | None = None


class RunCounts(BaseModel):
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    failed: int = 0


class SyncRunOut(BaseModel):
    run_id: str = Field(
        description="The run's id, which is also its job's: `/jobs/{run_id}` (progress, cancel, retry)."
    )
    job_url: str
    source_id: str
    collection: str
    trigger: RunTrigger
    state: JobState | str = Field(
        description="The job's state (queued, parsing, done, failed, cancelled) while the job is kept; then the run's "
        "last recorded state."
    )
    error: str | None = None
    counts: RunCounts
    created_at: float
    started_at: float | None
    finished_at: float | None
    entries: list[RunEntryOut] | None = Field(
        default=None, description="Per-entry outcomes (with `entries=true`; at most `entries_limit`)."
    )


class SyncRunPage(BaseModel):
    total: int
    offset: int
    limit: int
    runs: list[SyncRunOut]
