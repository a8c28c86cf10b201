"""The composition root: the one place that builds the service objects from `Settings` and the loaded pipelines.

The app's lifespan, every `rag` command, the job workers (embedded and `rag worker`) and `rag eval` call these
functions, so a limit or default set in `Settings` means the same thing on every path. Nothing else constructs
`IngestService`, `QueryService`, `JobService`, `JobRunner` or the stores behind keys and collections.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from app.blobs import BlobStore, LocalBlobStore, S3BlobStore, parse_blob_url
from app.cluster import check_deployment
from app.errors import NotFoundError
from app.jobs import JobRunner, JobService, JobStore
from app.jobs.store import MIGRATIONS as JOB_MIGRATIONS
from app.jobs.store import POSTGRES_MIGRATIONS as JOB_POSTGRES_MIGRATIONS
from app.pipeline_loader import PipelineSet, load_pipelines
from app.services import access, api_keys, collections, files, registry, responses, vector_stores
from app.services.access import AccessStore
from app.services.api_keys import KeyStore
from app.services.collections import CollectionService
from app.services.documents import DocumentService
from app.services.file_checks import FileLimits
from app.services.files import FileService
from app.services.generation_queue import GenerationQueue
from app.services.ingest import IngestService
from app.services.ingest_worker import IngestWorker, WorkerIngestService
from app.services.query import QueryService
from app.services.rate_limit import RateLimiter
from app.services.registry import DocumentRegistry
from app.services.responses import ResponseStore
from app.services.vector_store_search import VectorStoreSearch
from app.services.vector_stores import VectorStoreService
from app.settings import Settings
from app.state import StateDatabase, state_database
from app.sync import store as sync_store
from app.sync.listing import SyncLimits
from app.sync.runner import SyncRunner, ingest_adapter
from app.sync.service import SourceService
from app.sync.store import SourceStore
from components.stores.missing_values import filters_missing_values


@dataclass
class Services:
    """Every service of one process, built once (`build_services`); the routes read it as `State`."""

    settings: Settings
    pipelines: PipelineSet
    ingest: IngestService
    query: QueryService
    collections: CollectionService
    documents: DocumentService
    keys: KeyStore
    rate_limiter: RateLimiter
    jobs: JobService
    generation: GenerationQueue
    auth_executor: ThreadPoolExecutor
    files: FileService
    vector_stores: VectorStoreService
    vector_store_search: VectorStoreSearch
    responses: ResponseStore
    sources: SourceService
    access: AccessStore
    missing_value_filters: bool  # the store's filters match a missing meta field (`app.services.visibility`)
    ingest_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(1))
    ingest_worker: IngestWorker | None = None  # `rag serve`: the recycled process that indexes (RAG_INGEST_WORKER)
    warmed_up: bool = False

    def warm_up(self) -> None:
        """Load models and open resources once; with an indexing worker, it warms the indexing pipeline itself."""
        if self.ingest_worker is None:
            self.pipelines.warm_up()
            return
        self.pipelines.query.pipeline.warm_up()
        self.pipelines.check_embedding_dimension()
        self.ingest_worker.start()

    def close(self) -> None:
        """Stop the executors this object owns (generations not started are cancelled; running ones finish)."""
        self.generation.shutdown()
        self.auth_executor.shutdown(wait=False, cancel_futures=True)
        if self.ingest_worker is not None:
            self.ingest_worker.close()


AUTH_THREADS = 2  # key lookups are one indexed SQLite read each: two threads of their own keep them off shared pools


def load_pipeline_set(settings: Settings) -> PipelineSet:
    """Publish the settings the YAML reads (`${RAG_DATA_DIR}`, converter limits), load both pipelines, then refuse a
    deployment that would keep state to one host (`app.cluster.check_deployment`: RAG_CLUSTER, SQLite on NFS)."""
    settings.export_env()
    pipelines = load_pipelines(settings.pipelines_dir)
    check_deployment(settings, pipelines.document_store)
    return pipelines


def file_limits(settings: Settings) -> FileLimits:
    """The per-file limits checked before a file reaches the indexing pipeline."""
    return FileLimits(
        max_pdf_pages=settings.max_pdf_pages,
        max_image_pixels=settings.max_image_pixels,
        max_unzipped_mb=settings.max_unzipped_mb,
        parse_timeout_s=settings.parse_timeout_s,
    )


def ingest_service(settings: Settings, pipelines: PipelineSet) -> IngestService:
    """Indexing, one file at a time, with the deployment's file limits; each document claimed in the registry first;
    each chunk carries its collection's tenant (from the collections table)."""
    tenants = CollectionService(pipelines.document_store, collections_database(settings))
    return IngestService(
        pipelines,
        limits=file_limits(settings),
        registry=document_registry(settings),
        access=access_store(settings),
        tenant_of=tenants.tenant_of,
    )


def access_store(settings: Settings) -> AccessStore:
    """Which principals each access list id stands for (`app.services.access`), in the state database:
    RAG_DATA_DIR/access.db or RAG_STATE_URL (every host reads the lists another wrote)."""
    database = state_database(
        settings,
        name="access",
        sqlite_path=settings.data_dir / "access.db",
        sqlite_migrations=access.SQLITE_MIGRATIONS,
        postgres_migrations=access.POSTGRES_MIGRATIONS,
    )
    return AccessStore(database)


def document_registry(settings: Settings) -> DocumentRegistry:
    """The document registry (exactly once per document) in the state database: RAG_DATA_DIR/documents.db or
    RAG_STATE_URL; a claim lasts RAG_JOB_LEASE_SECONDS without renewal (a crashed indexer's document is taken over)."""
    database = state_database(
        settings,
        name="documents",
        sqlite_path=settings.data_dir / "documents.db",
        sqlite_migrations=registry.SQLITE_MIGRATIONS,
        postgres_migrations=registry.POSTGRES_MIGRATIONS,
    )
    return DocumentRegistry(database, lease_seconds=settings.job_lease_seconds)


def query_service(settings: Settings, pipelines: PipelineSet) -> QueryService:
    """Questions, with the deployment's top_k and question-length limits."""
    return QueryService(
        pipelines,
        default_top_k=settings.default_top_k,
        max_top_k=settings.max_top_k,
        max_question_chars=settings.max_question_chars,
        log_content=settings.log_content,
    )


def collections_database(settings: Settings) -> StateDatabase:
    """The collections table (with their tenants and generations) in the state database."""
    return state_database(
        settings,
        name="collections",
        sqlite_path=settings.collections_db,
        sqlite_migrations=collections.SQLITE_MIGRATIONS,
        postgres_migrations=collections.POSTGRES_MIGRATIONS,
    )


def collection_service(settings: Settings, pipelines: PipelineSet) -> CollectionService:
    """Collections over the pipelines' document store and the registry in the state database (RAG_DATA_DIR or
    RAG_STATE_URL); dropping one cancels its unfinished jobs (in the job table shared by every process), also when a
    job is all there is of it, and forgets its documents' registry rows."""
    jobs = job_store(settings)
    return CollectionService(
        pipelines.document_store,
        collections_database(settings),
        legacy_registry=settings.collections_registry,
        on_drop=jobs.cancel_collection,
        has_jobs=jobs.has_unfinished,
        documents=document_registry(settings),
    )


def response_store(settings: Settings) -> ResponseStore:
    """Stored responses of `POST /v1/responses` in the state database (RAG_DATA_DIR/responses.db or RAG_STATE_URL),
    kept RAG_RESPONSE_RETENTION_DAYS."""
    database = state_database(
        settings,
        name="responses",
        sqlite_path=settings.data_dir / "responses.db",
        sqlite_migrations=responses.SQLITE_MIGRATIONS,
        postgres_migrations=responses.POSTGRES_MIGRATIONS,
    )
    return ResponseStore(database, retention_days=settings.response_retention_days)


def generation_queue(settings: Settings) -> GenerationQueue:
    """The model's queue: its own threads, a limit per API key and overall (429/503 with Retry-After beyond)."""
    return GenerationQueue(
        workers=settings.generation_threads,
        limit=settings.generation_queue,
        per_key=settings.generation_queue_per_key,
    )


def auth_executor() -> ThreadPoolExecutor:
    """The threads that check API keys, so a key check never waits behind generations, uploads or listings."""
    return ThreadPoolExecutor(max_workers=AUTH_THREADS, thread_name_prefix="rag-auth")


def key_store(settings: Settings) -> KeyStore:
    """API keys (hashed) in the state database (RAG_DATA_DIR/auth.db or RAG_STATE_URL); needs no pipelines."""
    database = state_database(
        settings,
        name="api_keys",
        sqlite_path=settings.keys_db,
        sqlite_migrations=api_keys.SQLITE_MIGRATIONS,
        postgres_migrations=api_keys.POSTGRES_MIGRATIONS,
        timeout=10.0,
    )
    return KeyStore(database)


def blob_store(settings: Settings) -> BlobStore | Path:
    """Where the uploads of jobs wait: the objects under RAG_BLOB_URL (`s3://bucket/prefix`), else the folder
    RAG_DATA_DIR/jobs. The bucket is checked at once: a missing bucket or refused credentials stop the process with
    the reason; an endpoint that cannot be reached only warns (uploads answer 503 until it is back)."""
    if settings.blob_url is None:
        return settings.jobs_dir
    store = S3BlobStore(settings.blob_url)
    store.check()
    return store


def file_blob_store(settings: Settings) -> BlobStore:
    """Where the Files API keeps file contents (one object per distinct content): RAG_DATA_DIR/files, or, under
    RAG_BLOB_URL `s3://bucket/prefix`, the sibling prefix `<prefix>-files` (outside the job spool, whose retention
    sweep removes folders that belong to no job)."""
    if settings.blob_url is None:
        return LocalBlobStore(settings.data_dir / "files")
    return S3BlobStore(file_blob_url(settings.blob_url))


def file_blob_url(blob_url: str) -> str:
    """The Files API's place beside the job spool `blob_url`: `s3://bucket/prefix` -> `s3://bucket/prefix-files`
    (`s3://bucket/ragstack-files` for a bucket's root; the job sweep never removes a folder that is no job's)."""
    bucket, prefix = parse_blob_url(blob_url)
    return f"s3://{bucket}/{prefix or 'ragstack'}-files"


def openai_stores(
    settings: Settings, collections: CollectionService, jobs: JobService, documents: DocumentService
) -> tuple[FileService, VectorStoreService]:
    """The Files API and the vector stores over the collections (their tables in the state database: RAG_DATA_DIR's
    files.db and vector_stores.db, or RAG_STATE_URL); a restricted key sees the files attached to its stores."""
    file_service = FileService(
        state_database(
            settings,
            name="files",
            sqlite_path=settings.data_dir / "files.db",
            sqlite_migrations=files.SQLITE_MIGRATIONS,
            postgres_migrations=files.POSTGRES_MIGRATIONS,
        ),
        file_blob_store(settings),
        max_bytes=settings.max_upload_mb * 1024 * 1024,
    )
    stores = VectorStoreService(
        state_database(
            settings,
            name="vector_stores",
            sqlite_path=settings.data_dir / "vector_stores.db",
            sqlite_migrations=vector_stores.SQLITE_MIGRATIONS,
            postgres_migrations=vector_stores.POSTGRES_MIGRATIONS,
        ),
        collections=collections,
        files=file_service,
        jobs=jobs,
        documents=documents,
    )
    file_service.attached_to = stores.stores_of_file
    file_service.attached_within = stores.files_within
    return file_service, stores


def job_store(settings: Settings) -> JobStore:
    """The job table: in PostgreSQL when RAG_STATE_URL is set (shared by every host), else `jobs.db` in the data
    directory."""
    return JobStore(
        state_database(
            settings,
            name="jobs",
            sqlite_path=settings.jobs_db,
            sqlite_migrations=JOB_MIGRATIONS,
            postgres_migrations=JOB_POSTGRES_MIGRATIONS,
        )
    )


def job_service(settings: Settings, collections: CollectionService | None = None) -> JobService:
    """Submitting, listing, cancelling and retrying ingestion jobs, and their retention sweep (`rag jobs sweep`, and
    periodically in every process that runs jobs); each job records its collection's generation (`collections`), so
    that dropping the collection cancels it."""
    return JobService(
        job_store(settings),
        blob_store(settings),
        generation_of=collections.generation if collections is not None else None,
        retention_days=settings.job_retention_days,
        history_days=settings.job_history_days,
    )


def sync_limits(settings: Settings) -> SyncLimits:
    """What sync sources may name and read: RAG_SYNC_ROOTS, RAG_SYNC_S3_BUCKETS, RAG_SYNC_ALLOW_PRIVATE_URLS, the
    entry count and the upload size limit."""
    return SyncLimits(
        roots=settings.sync_root_paths,
        s3_buckets=frozenset(settings.sync_s3_buckets),
        allow_private_urls=settings.sync_allow_private_urls,
        max_entries=settings.sync_max_entries,
        max_file_bytes=settings.max_upload_mb * 1024 * 1024,
    )


def source_store(settings: Settings) -> SourceStore:
    """The sync sources, their entries and runs in the state database (RAG_DATA_DIR/sources.db or RAG_STATE_URL)."""
    return SourceStore(
        state_database(
            settings,
            name="sources",
            sqlite_path=settings.data_dir / "sources.db",
            sqlite_migrations=sync_store.SQLITE_MIGRATIONS,
            postgres_migrations=sync_store.POSTGRES_MIGRATIONS,
        )
    )


def source_service(settings: Settings, jobs: JobService) -> SourceService:
    """Sync sources and their runs (each run a job of `jobs`)."""
    return SourceService(source_store(settings), jobs, sync_limits(settings))


def sync_runner(settings: Settings, ingest: IngestService, jobs: JobStore) -> SyncRunner:
    """The runner of sync runs inside a job worker: ingests through `ingest` (`ingest_adapter`: `ingest_bytes` with
    `source_id` and `access`, `remove_source`)."""
    return SyncRunner(
        source_store(settings),
        lambda collection: ingest_adapter(ingest, collection),
        sync_limits(settings),
        run_finished=lambda run_id: _job_finished(jobs, run_id),
    )


def _job_finished(jobs: JobStore, job_id: str) -> bool:
    try:
        return jobs.get(job_id).state.finished
    except NotFoundError:
        return True


def job_runner(settings: Settings, pipelines: PipelineSet, *, worker: IngestWorker | None = None) -> JobRunner:
    """The runner of a `rag worker` process: its own job store, ingest service and collections; with `worker`, the
    files are indexed in that recycled process (the runner inside an indexing worker has none)."""
    collections = collection_service(settings, pipelines)
    ingest = (
        WorkerIngestService(
            pipelines,
            worker,
            limits=file_limits(settings),
            registry=document_registry(settings),
            access=access_store(settings),
        )
        if worker is not None
        else ingest_service(settings, pipelines)
    )
    store = job_store(settings)
    return JobRunner(
        store,
        ingest,
        blob_store(settings),
        lease_seconds=settings.job_lease_seconds,
        on_indexed=collections.register,
        generation_of=collections.generation,
        sync=sync_runner(settings, ingest, store).run,
    )


def embedded_job_runner(services: Services) -> JobRunner:
    """The runner of the API's embedded worker: the app's own job store, ingest service and collections (a job is
    indexed exactly as a synchronous upload of the same process would be)."""
    return JobRunner(
        services.jobs.store,
        services.ingest,
        services.jobs.blobs,
        lease_seconds=services.settings.job_lease_seconds,
        on_indexed=services.collections.register,
        generation_of=services.collections.generation,
        sync=sync_runner(services.settings, services.ingest, services.jobs.store).run,
    )


def ingest_worker(settings: Settings) -> IngestWorker:
    """The recycled indexing process of `rag serve` (one process per RAG_INGEST_CONCURRENCY slot)."""
    return IngestWorker(
        settings,
        max_files=settings.ingest_worker_max_files,
        max_growth_mb=settings.ingest_worker_max_growth_mb,
        processes=settings.ingest_concurrency,
    )


def build_services(settings: Settings, pipelines: PipelineSet | None = None, *, serving: bool = False) -> Services:
    """Everything the API needs (the CLI and eval use the same objects); loads the pipelines unless given.

    `serving` (the API's lifespan): index in the recycled worker process when RAG_INGEST_WORKER is on; the CLI and
    eval index in their own (short-lived) process."""
    pipelines = pipelines if pipelines is not None else load_pipeline_set(settings)
    collections = collection_service(settings, pipelines)
    worker = ingest_worker(settings) if serving and settings.ingest_worker else None
    ingest = (
        WorkerIngestService(
            pipelines,
            worker,
            limits=file_limits(settings),
            registry=document_registry(settings),
            access=access_store(settings),
        )
        if worker is not None
        else ingest_service(settings, pipelines)
    )
    query = query_service(settings, pipelines)
    jobs = job_service(settings, collections)
    access_lists = access_store(settings)
    documents = DocumentService(pipelines.document_store, registry=document_registry(settings), access=access_lists)
    file_service, stores = openai_stores(settings, collections, jobs, documents)
    return Services(
        settings=settings,
        pipelines=pipelines,
        ingest_worker=worker,
        ingest=ingest,
        query=query,
        collections=collections,
        documents=documents,
        keys=key_store(settings),
        rate_limiter=RateLimiter(settings.rate_limit, settings.rate_limit_storage or "memory://"),
        jobs=jobs,
        generation=generation_queue(settings),
        auth_executor=auth_executor(),
        files=file_service,
        vector_stores=stores,
        vector_store_search=VectorStoreSearch(query, pipelines.document_store, touch=stores.touch),
        responses=response_store(settings),
        sources=source_service(settings, jobs),
        access=access_lists,
        missing_value_filters=filters_missing_values(pipelines.document_store),
        ingest_slots=asyncio.Semaphore(settings.ingest_concurrency),
    )


EVAL_MAX_TOP_K = 200  # eval ranks more passages than a request may ask for (recall@k, nDCG@10)


def eval_services(settings: Settings, pipelines_dir: Path, data_dir: Path) -> Services:
    """Services for `rag eval`: the given pipeline profile over its own data directory (its keys, collections and
    document registry too, never the deployment's RAG_STATE_URL), the deployment's limits and model folder (a fresh
    eval directory does not get its own copy of the packaged models)."""
    run_settings = settings.model_copy(
        update={
            "pipelines_dir": pipelines_dir,
            "data_dir": data_dir,
            "model_dir": settings.model_cache_dir,
            "state_url": None,
            "max_top_k": max(settings.max_top_k, EVAL_MAX_TOP_K),
        }
    )
    return build_services(run_settings)
