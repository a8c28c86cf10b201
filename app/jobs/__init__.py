"""Background ingestion jobs: a durable job table, spooled uploads and the workers that run them, one file at a time.

- `models`: the job and file states (`JobState`, `FileState`, `FileStatus`) and the `Job` / `JobFile` rows.
- `store`: the job table (SQLite `data_dir/jobs.db`, or PostgreSQL with RAG_STATE_URL; versioned schema with
  migrations): each file is claimed and leased on its own, with a fence that makes a stale worker's writes void; the
  job's state is aggregated from its files.
- `service`: `JobService.submit` spools an async upload's files as `<id>/<n>` blobs (durably) and records the job
  before it is answered; nothing about a job lives only in memory. Read, cancel, retry; `sweep` applies the
  retention (RAG_JOB_RETENTION_DAYS for spooled uploads, RAG_JOB_HISTORY_DAYS for finished jobs).
- `runner`: `JobRunner` runs claimed files through the ordinary `IngestService`, renewing each file's lease; it stops
  before the next pipeline component when the lease is lost, the job cancelled or the worker stopping. A file whose
  worker died (lease ran out, or its process is gone on this host) is claimed again and re-run from a clean state.
- `workers`: the embedded worker (default, an asyncio task of the API process) and the Redis queue (`rag worker`, one
  task per file); the periodic retention sweep of both.

Services are built by `app.composition` (`job_store`, `job_service`, `job_runner`, `embedded_job_runner`), never
elsewhere.
"""

from app.jobs.models import FileState, FileStatus, Job, JobFile, JobState, UploadedFile
from app.jobs.runner import JobRunner
from app.jobs.service import JobService
from app.jobs.store import JobStore

__all__ = [
    "FileState",
    "FileStatus",
    "Job",
    "JobFile",
    "JobRunner",
    "JobService",
    "JobState",
    "JobStore",
    "UploadedFile",
]
