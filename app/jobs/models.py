"""What a job is: its states, its files' states, and the rows the store returns.

The enums are the one spelling of every state: the store binds them as SQL parameters, the API schemas use them as
field types (so the OpenAPI schema lists them) and the runner compares against them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class JobState(StrEnum):
    """Where a job is: waiting, in one of the three stages of the file being indexed, or finished."""

    QUEUED = "queued"
    PARSING = "parsing"  # reading, converting, cleaning and splitting the file
    EMBEDDING = "embedding"
    WRITING = "writing"  # writing the chunks to the document store
    DONE = "done"  # every file finished; some may have failed (see the files)
    FAILED = "failed"  # no file could be indexed
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        """True for the terminal states (a worker never takes such a job again, until it is retried)."""
        return self in TERMINAL_STATES


TERMINAL_STATES = (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


class FileState(StrEnum):
    """Where one file of a job is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"  # the job was cancelled before (or while) the file ran


UNFINISHED_FILE_STATES = (FileState.QUEUED, FileState.RUNNING)
FINISHED_FILE_STATES = (FileState.DONE, FileState.FAILED, FileState.SKIPPED)


class FileStatus(StrEnum):
    """A finished file's ingest result, as in a synchronous upload."""

    INDEXED = "indexed"  # a new source
    UPDATED = "updated"  # a new version of its source replaced the previous one
    UNCHANGED = "unchanged"  # the same content as its source's current version: nothing written
    DUPLICATE = "duplicate"  # its content is another source's current version in the collection
    FAILED = "failed"


@dataclass
class JobFile:
    """One file of a job: where it is in its life (`state`) and, once finished, its ingest result."""

    index: int
    filename: str
    content_type: str | None
    size: int
    document_id: str
    spooled: bool
    state: FileState
    status: FileStatus | None
    pages_total: int
    attempts: int
    pages_done: int
    chunks_total: int
    chunks_done: int
    pages: int
    chunks: int
    error: str | None
    error_code: str | None
    duration_ms: float
    owner: str | None = None  # the worker holding the file (its lease runs to `lease_until`, database time)
    lease_until: float = 0.0
    fence: int = 0  # moved on by every claim: a worker's writes count only while the fence is still its own
    stage: JobState | None = None  # a running file's stage (parsing, embedding, writing)
    tags: dict[str, Any] = field(default_factory=dict)  # this file's own tags, over the job's (a vector store file's)
    split: tuple[int, ...] | None = None  # the splitter's (length, overlap) in characters for this file, if set
    source_id: str | None = None  # the source it is a version of (None: its file name)
    version: int = 0  # the source's version after it ran (0: none)
    chunks_unchanged: int = 0  # against the source's previous version, by chunk hash
    chunks_added: int = 0
    chunks_removed: int = 0


@dataclass
class Job:
    """A job with its files."""

    id: str
    collection: str
    tags: dict[str, Any]
    state: JobState
    error: str | None
    cancel_requested: bool
    owner: str | None  # a worker holding one of its files (each file is claimed and leased on its own)
    lease_until: float
    created_at: float
    updated_at: float
    finished_at: float | None
    files: list[JobFile] = field(default_factory=list)
    generation: int = 0  # the collection's generation when the job was submitted or retried (a drop moves it on)
    acl: str | None = None  # the id of its documents' access list (`app.services.access`; None: public)

    @property
    def progress(self) -> dict[str, int]:
        """Pages and chunks done / total, files finished / total."""
        return {
            "files_done": sum(f.state in FINISHED_FILE_STATES for f in self.files),
            "files_total": len(self.files),
            "pages_done": sum(f.pages_done for f in self.files),
            "pages_total": sum(f.pages_total for f in self.files),
            "chunks_done": sum(f.chunks_done for f in self.files),
            "chunks_total": sum(f.chunks_total for f in self.files),
        }


@dataclass
class UploadedFile:
    """A file of an async upload, as received: its bytes, or the reason it was refused before spooling; and its PDF page
    count when the upload route already read it (0: the PDF cannot be opened); `tags` of this file only (over the
    job's)."""

    filename: str
    content_type: str | None
    data: bytes | None
    error: str | None = None
    error_code: str | None = None
    pdf_pages: int | None = None
    tags: dict[str, Any] | None = None  # this file's own tags, merged over the job's
    split: tuple[int, int] | None = None  # the splitter's (length, overlap) in characters (a vector store's chunking)
    source_id: str | None = None  # the source it is a version of (default: its file name)
