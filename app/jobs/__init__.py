"""Background ingestion jobs: a durable SQLite job table, spooled uploads and the workers that run them.

- `models`: the job and file states (`JobState`, `FileState`, `FileStatus`) and the `Job` / `JobFile` rows.
- `store`: the job table (`data_dir/jobs.db`, versioned schema with migrations) and the workers' leases.
- `service`: `JobService.submit` spools an async upload's files to `data_dir/jobs/<id>/<n>` (fsynced) and records the
  job before it is answered; nothing about a job lives only in memory. Read, cancel, retry; `sweep` applies the
  retention (RAG_JOB_RETENTION_DAYS for spooled uploads, RAG_JOB_HISTORY_DAYS for finished jobs).
- `runner`: `JobRunner` runs a job file by file through the ordinary `IngestService`, holding a lease it renews. A job
  whose worker died (lease ran out, or its process is gone on this host) is taken over and resumed.
- `workers`: the embedded worker (default, an asyncio task of the API process) and the Redis queue (`rag worker`);
  the periodic retention sweep of both.

Services are built by `app.composition` (`job_service`, `job_runner`, `embedded_job_runner`), never elsewhere.
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
