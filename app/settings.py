"""Deployment settings: one pydantic-settings class, read from `RAG_*` environment variables (or a `.env` file).

Pipeline structure and model parameters live in the YAML files; these are deployment facts only.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Literal

from limits import parse_many
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
_COLLECTION_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


class Settings(BaseSettings):
    """Every field maps to `RAG_<FIELD>`; docs/configuration.md is generated from these fields and descriptions."""

    model_config = SettingsConfigDict(env_prefix="RAG_", env_file=".env", extra="ignore")

    data_dir: Path = Field(
        default=Path("data"),
        description="Where the embedded store, API keys, jobs and spooled uploads live. "
        "Exported as RAG_DATA_DIR so `${RAG_DATA_DIR}` in pipeline YAML resolves to it.",
    )
    model_dir: Path | None = Field(
        default=None,
        description="Where the packaged models are reassembled and derived once (the GGUF LLM, ~1.1 GB; the int8 "
        "embedder) and loaded from. Exported as RAG_MODEL_DIR for the pipelines' `cache_dir: ${RAG_MODEL_DIR}`. "
        "Unset: RAG_DATA_DIR/models. Several data directories (or the processes of one host) can share one folder.",
    )
    profile: str = Field(
        default="default",
        pattern=r"^[a-z0-9_-]+$",
        description="Pipeline profile: `default` (embedded LanceDB + llama.cpp) is `pipelines/`; any other name is "
        "`pipelines/profiles/<name>/` (pgvector, weaviate, pinecone, openai, ollama). See docs/profiles.md.",
    )
    pipelines_dir: Path = Field(
        default=None,  # type: ignore[assignment]  # resolved from `profile` below
        validate_default=False,
        description="Folder holding indexing.yml and query.yml; overrides RAG_PROFILE when set (unset: the "
        "profile's folder).",
    )
    default_collection: str = Field(
        default="default",
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="Collection used when a request names none.",
    )
    default_top_k: int = Field(default=5, ge=1, le=50, description="Passages retrieved when a query names no top_k.")
    max_top_k: int = Field(default=50, ge=1, le=200, description="Upper bound on a requested top_k.")
    max_question_chars: int = Field(
        default=4000, ge=100, le=100_000, description="Longer questions are refused (400) before any model runs."
    )
    max_upload_mb: int = Field(default=50, ge=1, le=1024, description="Largest accepted upload file, in MiB.")
    max_request_mb: int = Field(
        default=200,
        ge=1,
        le=10_240,
        description="Largest request body (MiB); a bigger one gets a JSON 413 before it is read (a declared "
        "Content-Length at once, a streamed body as soon as it passes the limit).",
    )
    max_json_kb: int = Field(
        default=1024,
        ge=16,
        le=10_485_760,
        description="Largest request body that is not a multipart file upload, in KiB (JSON bodies: queries, chat, "
        "keys, collections; also bodies without a content type, which are parsed as JSON). Such bodies are read "
        "into memory whole, so they are kept small: bigger ones get 413 before they are read. Capped by "
        "RAG_MAX_REQUEST_MB.",
    )
    max_files_per_upload: int = Field(default=20, ge=1, le=200, description="Files accepted in one upload request.")
    max_pdf_pages: int = Field(default=2000, ge=1, le=100_000, description="PDFs with more pages are refused (413).")
    max_image_pixels: int = Field(
        default=89_478_485,
        ge=1_000_000,
        le=1_000_000_000,
        description="Images with more pixels are refused (413); Pillow's own default limit.",
    )
    max_unzipped_mb: int = Field(
        default=200,
        ge=1,
        le=4096,
        description="A DOCX that would expand beyond this (MiB), or beyond 200x its size, is refused (413).",
    )
    parse_timeout_s: float = Field(
        default=300,
        ge=1,
        le=3600,
        description="Seconds one file's parsing may take (converters run in a worker process that is stopped after "
        "this): a slower file fails with 422 `parse_timeout`. OCR takes ~3 s per scanned page on 2 cores. "
        "Exported as RAG_PARSE_TIMEOUT_S for the pipeline YAML.",
    )
    max_text_chars: int = Field(
        default=5_000_000,
        ge=1_000,
        le=500_000_000,
        description="Characters of text one file may yield; a file with more fails with 413 before it is split or "
        "embedded (5 M characters: ~2,000 book pages, ~1 h of embedding on 2 cores). "
        "Exported as RAG_MAX_TEXT_CHARS for the pipeline YAML.",
    )
    llm_threads: int | None = Field(
        default=None,
        ge=1,
        le=1024,
        description="CPU threads of the local llama.cpp model; unset: llama.cpp's default (half the cores). "
        'Exported as RAG_LLM_THREADS for the pipeline YAML (`n_threads: "${RAG_LLM_THREADS:-}"`).',
    )
    dev_mode: bool = Field(
        default=False,
        description="Development only: no API keys and no rate limit (every request acts as an admin). "
        "`rag serve` refuses it on a non-loopback address.",
    )
    public_endpoints: Annotated[set[Literal["health", "ready", "metrics"]], NoDecode] = Field(
        default={"health", "ready", "metrics"},
        description="Endpoints answered without an API key (comma-separated; empty: all need a key).",
    )
    metrics_collections: Annotated[set[str], NoDecode] = Field(
        default=set(),
        description="Collections whose names may appear as the `collection` label of `/metrics` (comma-separated; "
        'the endpoint is public by default). Every other collection is counted under `collection="other"`, so '
        "by default no name is shown and the label has one value; with names, at most their number + 1 (a "
        "collection named `other` cannot be listed).",
    )
    rate_limit: str = Field(
        default="300/minute",
        max_length=64,
        description="Requests per API key (moving window), e.g. `120/minute` or `10/second;300/hour` (combined); "
        "`off` disables. Over the limit: 429 with `Retry-After`.",
    )
    rate_limit_storage: str | None = Field(
        default=None,
        max_length=256,
        description="Where rate-limit counters live: `memory://` (per process) or `redis://host:6379/0` (shared "
        "by every worker and replica). Unset: RAG_REDIS_URL when it is set or RAG_JOB_QUEUE=redis, else `memory://`.",
    )
    generation_queue: int = Field(
        default=8,
        ge=1,
        le=1024,
        description="Generations (calls that reach the LLM: `/query`, `/query/stream`, `/v1/chat/completions`) "
        "admitted at once over all keys, waiting plus running; beyond it 503 with `Retry-After`. They run on the "
        "model's own threads, so key checks, search-only queries and listings never wait behind them.",
    )
    generation_queue_per_key: int = Field(
        default=2,
        ge=1,
        le=1024,
        description="Generations one API key may have waiting or running; beyond it 429 with `Retry-After`.",
    )
    generation_threads: int = Field(
        default=1,
        ge=1,
        le=16,
        description="Threads that run generations (the model's executor). llama.cpp serializes on one model, so 1; "
        "more only for an LLM server that answers in parallel (Ollama, OpenAI-compatible).",
    )
    ingest_worker: bool = Field(
        default=True,
        description="`rag serve` and `rag worker` index in a separate worker process that is replaced before its "
        "memory grows (RAG_INGEST_WORKER_MAX_FILES, RAG_INGEST_WORKER_MAX_GROWTH_MB), so their own memory stays "
        "flat; false indexes in their own process (`rag ingest` always does).",
    )
    ingest_worker_max_files: int = Field(
        default=2000,
        ge=0,
        le=10_000_000,
        description="Files an indexing worker indexes before it is replaced (0: no limit).",
    )
    ingest_worker_max_growth_mb: int = Field(
        default=64,
        ge=0,
        le=65_536,
        description="Memory an indexing worker may gain above its size after warm-up (MiB) before it is replaced "
        "(0: no limit). The replacement warms up while the old worker goes on indexing.",
    )
    malloc_arena_max: int = Field(
        default=2,
        ge=0,
        le=64,
        description="glibc malloc arenas of a server or worker process (0: glibc's default of 8 per core). Few arenas "
        "keep the memory freed by pool threads reusable instead of held per thread; freed memory is also returned "
        "to the system after each ingested file.",
    )
    ingest_concurrency: int = Field(
        default=1, ge=1, le=8, description="Files indexed at the same time (embedding is CPU-bound: 1 on 2 cores)."
    )
    async_threshold_mb: int = Field(
        default=20,
        ge=1,
        le=10_240,
        description="Uploads larger than this in total (MiB) are indexed by a background job: 202 + job id "
        "(`?async=true` asks for a job whatever the size).",
    )
    async_threshold_pages: int = Field(
        default=500, ge=1, le=100_000, description="Uploads with more PDF pages than this in total become a job too."
    )
    job_queue: Literal["embedded", "redis"] = Field(
        default="embedded",
        description="`embedded`: jobs run in the API process (an in-process worker); `redis`: job ids go to an rq "
        "queue at RAG_REDIS_URL and separate `rag worker` processes run them (same data dir: the job table and "
        "spooled uploads live there).",
    )
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0", max_length=2048, description="Redis of the job queue (RAG_JOB_QUEUE=redis)."
    )
    job_lease_seconds: int = Field(
        default=30,
        ge=2,
        le=3600,
        description="A worker renews its lease on the job file it runs every third of this (on the database's "
        "clock); a file whose worker stopped renewing (crashed on another host) is taken over by another after this "
        "long. `rag worker`'s termination grace period should be at least this.",
    )
    job_retention_days: int = Field(
        default=7,
        ge=0,
        le=36_500,
        description="The spooled uploads of a finished job (its failed or cancelled files, kept for `retry`) are "
        "removed this many days after it finished; a retry then answers 410. 0 keeps them forever.",
    )
    job_history_days: int = Field(
        default=30,
        ge=0,
        le=36_500,
        description="Finished jobs are deleted from the job table (and their uploads with them) this many days after "
        "they finished. 0 keeps them forever.",
    )
    sync_roots: Annotated[list[Path] | None, NoDecode] = Field(
        default=None,
        description="Folders under which folder sync sources may lie (comma-separated absolute paths; a source's "
        "folder must resolve inside one, symlinks included). Unset: RAG_DATA_DIR/sources only. Empty: folder sources "
        "are refused.",
    )
    sync_s3_buckets: Annotated[set[str], NoDecode] = Field(
        default=set(),
        description="Buckets S3 sync sources may read (comma-separated), with the object store's AWS configuration. "
        "Empty (default): S3 sources are refused.",
    )
    sync_allow_private_urls: bool = Field(
        default=False,
        description="Let URL sync sources reach loopback, private, link-local and other non-public addresses "
        "(refused by default: the server would fetch internal services for a caller).",
    )
    sync_max_entries: int = Field(
        default=10_000, ge=1, le=1_000_000, description="Most files (or URLs) one sync source may hold."
    )
    sync_schedule_seconds: float = Field(
        default=60.0,
        ge=1.0,
        le=3600.0,
        description="How often the API process looks for sync sources whose interval is due and queues their runs "
        "(`rag sync --due` queues them too, from cron or a timer).",
    )
    response_retention_days: int = Field(
        default=30,
        ge=0,
        le=36_500,
        description="Responses stored by `POST /v1/responses` (`store: true`, the default) are deleted this many days "
        "after they were created; a later `previous_response_id` or `GET /v1/responses/{id}` then answers 404. 0 keeps "
        "them forever.",
    )
    state_url: str | None = Field(
        default=None,
        max_length=2048,
        description="PostgreSQL holding the service's own state (jobs and their files, API keys, collections, the "
        "document registry), e.g. `postgresql://rag:secret@db:5432/rag` (may equal PG_CONN_STR). Unset: SQLite "
        "files under RAG_DATA_DIR (one host). Required with RAG_CLUSTER.",
    )
    blob_url: str | None = Field(
        default=None,
        max_length=2048,
        description="Where the uploads of background jobs wait until indexed: `s3://bucket/prefix` (S3 or any "
        "S3-compatible server; credentials and AWS_ENDPOINT_URL from the usual AWS variables). Unset: the folder "
        "`jobs/` under RAG_DATA_DIR (one host). Required with RAG_CLUSTER.",
    )
    admin_key: SecretStr | None = Field(
        default=None,
        description="An admin API key (`rag_<12 hex>_<43 chars>`, e.g. from `rag keys generate`) given as a secret: "
        "stored hashed at start (idempotent: every replica may start with it) instead of writing `admin.key`.",
    )
    cluster: bool = Field(
        default=False,
        description="Several hosts share this deployment: refuse to start on anything one host keeps to itself "
        "(SQLite state, the spool folder, the embedded LanceDB store, per-process rate limits), naming what to "
        "configure instead.",
    )
    worker_metrics_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="`rag worker` serves its Prometheus `/metrics` on this port (0: not served).",
    )
    header_read_timeout_s: float = Field(
        default=10,
        ge=0.1,
        le=300,
        description="`rag serve`: a connection whose request line and headers are not complete this long after it "
        "opened (or after the previous response) is closed (slow-header clients).",
    )
    body_read_timeout_s: float = Field(
        default=30,
        ge=0.1,
        le=3600,
        description="Longest wait for the next chunk of a request body; a body that stalls longer gets 408 and the "
        "connection is closed (no connection, thread or spooled file is held by a stalled client).",
    )
    keep_alive_timeout_s: int = Field(
        default=5, ge=1, le=300, description="`rag serve`: idle keep-alive connections are closed after this."
    )
    max_header_bytes: int = Field(
        default=16_384,
        ge=1024,
        le=1_048_576,
        description="`rag serve`: largest request line + headers (h11's max incomplete event size); larger: 400.",
    )
    host: str = Field(default="127.0.0.1", description="`rag serve` bind address.")
    port: int = Field(default=8000, ge=1, le=65535, description="`rag serve` port.")
    workers: int = Field(
        default=1, ge=1, le=16, description="`rag serve` worker processes (each loads its own models: ~0.6 GiB)."
    )

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", description="Root log level.")
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto", description="`json` lines (production), `console` (readable), `auto`: console on a terminal."
    )
    log_file: Path | None = Field(default=None, description="Also write logs to this file, rotated by size.")
    log_file_max_mb: int = Field(default=50, ge=1, le=1024, description="Size at which the log file rotates (MiB).")
    log_file_backups: int = Field(default=5, ge=0, le=100, description="Rotated log files kept.")
    log_content: bool = Field(
        default=False, description="Debug only: log questions and passage text (never logged otherwise)."
    )
    otlp_endpoint: str | None = Field(
        default=None,
        description="Enables tracing: OTLP/HTTP traces endpoint, e.g. http://127.0.0.1:4318/v1/traces "
        "(Haystack's OpenTelemetry tracer; a span per pipeline and per component).",
    )
    service_name: str = Field(
        default="ragstack", min_length=1, max_length=64, description="OpenTelemetry service name."
    )

    @field_validator("sync_roots", mode="before")
    @classmethod
    def _split_paths(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("public_endpoints", "metrics_collections", "sync_s3_buckets", mode="before")
    @classmethod
    def _split_comma_list(cls, value: object) -> object:
        if isinstance(value, str):
            return {part.strip() for part in value.split(",") if part.strip()}
        return value

    @field_validator("metrics_collections")
    @classmethod
    def _check_collections(cls, value: set[str]) -> set[str]:
        bad = sorted(name for name in value if not _COLLECTION_NAME.fullmatch(name))
        if bad:
            raise ValueError(f"metrics_collections: {bad} are not collection names (letters, digits, _ and -)")
        if "other" in value:
            raise ValueError("metrics_collections: 'other' is the label of every collection not listed")
        return value

    @field_validator("llm_threads", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("rate_limit")
    @classmethod
    def _check_rate_limit(cls, value: str) -> str:
        if value.strip().lower() != "off":
            try:
                parse_many(value)
            except ValueError as error:
                raise ValueError(f"rate_limit {value!r} is not like '120/minute' or 'off'") from error
        return value

    @model_validator(mode="after")
    def _resolve_rate_limit_storage(self) -> Settings:
        if self.rate_limit_storage is None:
            shared = "redis_url" in self.model_fields_set or self.job_queue == "redis"
            self.rate_limit_storage = self.redis_url if shared else "memory://"
        return self

    @model_validator(mode="after")
    def _resolve_pipelines_dir(self) -> Settings:
        if self.pipelines_dir is None:
            base = PROJECT_ROOT / "pipelines"
            self.pipelines_dir = base if self.profile == "default" else base / "profiles" / self.profile
        return self

    @property
    def keys_db(self) -> Path:
        """SQLite file of the hashed API keys."""
        return self.data_dir / "auth.db"

    @property
    def bootstrap_key_file(self) -> Path:
        """Where the first start writes an admin key when no key exists (auth on)."""
        return self.data_dir / "admin.key"

    @property
    def collections_db(self) -> Path:
        """SQLite file of the explicitly created collections (those holding chunks are found in the store)."""
        return self.data_dir / "collections.db"

    @property
    def collections_registry(self) -> Path:
        """The JSON list of created collections of earlier releases, imported into `collections_db` once."""
        return self.data_dir / "collections.json"

    @property
    def model_cache_dir(self) -> Path:
        """Where packaged models are reassembled and derived: RAG_MODEL_DIR, else RAG_DATA_DIR/models."""
        return self.model_dir if self.model_dir is not None else self.data_dir / "models"

    @property
    def jobs_db(self) -> Path:
        """The durable table of background ingestion jobs (SQLite, WAL)."""
        return self.data_dir / "jobs.db"

    @property
    def sync_root_paths(self) -> tuple[Path, ...]:
        """The folders sync sources may lie under (RAG_SYNC_ROOTS, else RAG_DATA_DIR/sources)."""
        if self.sync_roots is None:
            return (self.data_dir / "sources",)
        return tuple(self.sync_roots)

    @property
    def jobs_dir(self) -> Path:
        """Uploads of background jobs, spooled until indexed (`<job id>/<file index>`)."""
        return self.data_dir / "jobs"

    def export_env(self) -> None:
        """Publish what pipeline YAML reads from the environment: the `${RAG_DATA_DIR}` and `${RAG_MODEL_DIR}` paths,
        converter limits, threads."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        os.environ["RAG_DATA_DIR"] = str(self.data_dir.resolve())
        os.environ["RAG_MODEL_DIR"] = str(self.model_cache_dir.resolve())
        os.environ["RAG_PARSE_TIMEOUT_S"] = f"{self.parse_timeout_s:g}"
        os.environ["RAG_MAX_TEXT_CHARS"] = str(self.max_text_chars)
        if self.llm_threads is None:
            os.environ.pop("RAG_LLM_THREADS", None)  # the YAML's `${RAG_LLM_THREADS:-}`: llama.cpp's default
        else:
            os.environ["RAG_LLM_THREADS"] = str(self.llm_threads)
