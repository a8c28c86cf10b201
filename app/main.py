"""The FastAPI application: `create_app()` + a lifespan that loads and warms the YAML pipelines once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from haystack import logging

from app import metrics
from app.api.body_timeout import BodyReadTimeoutMiddleware
from app.api.errors import install_error_handlers
from app.api.mcp import mcp_sessions, mount_mcp
from app.api.middleware import ApiKeyMiddleware, BodySizeLimitMiddleware, RequestContextMiddleware
from app.api.routes import (
    collections,
    documents,
    files,
    health,
    jobs,
    keys,
    openai,
    query,
    responses,
    sources,
    vector_store_search,
    vector_stores,
)
from app.api.routes.demo import mount_demo
from app.composition import Services, build_services, embedded_job_runner, load_pipeline_set
from app.jobs import JobStore
from app.jobs.workers import EmbeddedWorker, RedisQueue, requeue_unowned, sweep_forever
from app.logs import configure_logging
from app.memory import limit_malloc_arenas
from app.services.api_keys import KeyStore, bootstrap_admin_key
from app.settings import Settings
from app.sync.service import enqueue_due_forever
from app.tracing import configure_tracing

logger = logging.getLogger(__name__)

DESCRIPTION = """
Retrieval-augmented generation over your documents. Pipelines are Haystack YAML (`pipelines/`); the default profile
runs offline (LanceDB + ONNX embedder + llama.cpp). Upload files into a collection, then query it: the answer cites
its numbered sources, `[n]` matching `sources[].n`.
"""


@asynccontextmanager
async def background_jobs(settings: Settings, state: Services) -> AsyncIterator[None]:
    """Embedded: an in-process worker runs (and resumes) the jobs. Redis: jobs are enqueued for `rag worker`
    processes, and this process re-queues the jobs of workers that died. Both: the job retention sweep runs at start
    and hourly, with the expired vector stores' deletion; the sync scheduler queues the runs of due sources every
    RAG_SYNC_SCHEDULE_SECONDS."""
    sweeper = asyncio.create_task(
        sweep_forever(state.jobs, also=[state.vector_stores.drop_expired]), name="rag-job-sweep"
    )
    schedulers: list[asyncio.Task[None]] = []

    def start_scheduler() -> None:  # once the job service tells the worker(s): the runs it queues are picked up
        schedulers.append(
            asyncio.create_task(
                enqueue_due_forever(state.sources, settings.sync_schedule_seconds), name="rag-sync-scheduler"
            )
        )

    try:
        if settings.job_queue == "redis":
            queue = RedisQueue(settings.redis_url, store=state.jobs.store)
            state.jobs.notify = queue.notify  # one task per file of the job
            await asyncio.to_thread(requeue_unowned, state.jobs.store, queue)
            start_scheduler()
            watchdog = asyncio.create_task(
                _requeue_orphans_forever(state.jobs.store, queue, settings.job_lease_seconds)
            )
            try:
                yield
            finally:
                watchdog.cancel()
            return
        runner = embedded_job_runner(state)
        worker = EmbeddedWorker(runner, state.ingest_slots)
        state.jobs.notify = worker.wake
        worker.start()
        start_scheduler()
        try:
            yield
        finally:
            await worker.stop()
    finally:
        for task in (sweeper, *schedulers):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _requeue_orphans_forever(store: JobStore, queue: RedisQueue, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        await asyncio.to_thread(queue.requeue_orphans, store)


def bootstrap_keys(settings: Settings, keys: KeyStore) -> None:
    """The first admin key: RAG_ADMIN_KEY stored hashed (every replica may do it; a malformed value or one whose id is
    stored with another secret stops the start with `AdminKeyError`), else, on a first start with no key at all, a new
    one written to `admin.key`."""
    if settings.admin_key is not None:
        key = keys.ensure_admin_key(settings.admin_key.get_secret_value())
        if key.revoked_at:
            logger.warning("RAG_ADMIN_KEY {prefix} is revoked: it stays refused", prefix=key.prefix)
        return
    if (key_file := bootstrap_admin_key(keys, settings.bootstrap_key_file)) is not None:
        logger.warning(
            "No API key existed: an admin key was written to {path} (mode 600); create keys with it, then revoke it",
            path=str(key_file.resolve()),
        )


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; pipelines are loaded in the lifespan, never at import time."""
    settings = settings or Settings()
    configure_logging(settings)
    limit_malloc_arenas(settings.malloc_arena_max)  # before the pool threads allocate
    metrics.configure(collections=settings.metrics_collections)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_tracing(settings)
        pipelines = load_pipeline_set(settings)
        state = build_services(settings, pipelines, serving=True)
        if settings.dev_mode:
            logger.warning("Dev mode: API-key auth and rate limits are OFF; never expose this server")
        else:
            await asyncio.to_thread(bootstrap_keys, settings, state.keys)
        await asyncio.to_thread(state.warm_up)
        state.warmed_up = True
        app.state.rag = state
        try:
            async with background_jobs(settings, state), mcp_sessions(app):
                logger.info("Service ready: pipelines from {directory}", directory=str(settings.pipelines_dir))
                yield
        finally:
            state.close()

    # Swagger UI and ReDoc load their scripts from a CDN (no SRI) on the origin whose sessionStorage holds the demo
    # page's API key: with auth on they are off. /openapi.json stays public for tooling (it holds no data).
    interactive_docs = settings.dev_mode
    app = FastAPI(
        title="ragstack",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs" if interactive_docs else None,
        redoc_url="/redoc" if interactive_docs else None,
    )
    install_error_handlers(app)
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=settings.max_request_mb * 1024 * 1024,
        max_json_bytes=settings.max_json_kb * 1024,
    )
    app.add_middleware(BodyReadTimeoutMiddleware, timeout_s=settings.body_read_timeout_s)  # a stalled body: 408
    app.add_middleware(ApiKeyMiddleware, settings=settings)  # outside the body limits: no key, no body read at all
    app.add_middleware(RequestContextMiddleware)  # added last = outermost: the 401/408/413 above are logged and counted
    for router in (
        documents.router,
        jobs.router,
        query.router,
        collections.router,
        keys.router,
        health.router,
        openai.router,
        files.router,
        vector_stores.router,
        vector_store_search.router,
        responses.router,
        sources.router,
    ):
        app.include_router(router)
    mount_mcp(app)  # the MCP server at /mcp (app/api/mcp.py)
    mount_demo(app)  # the demo page at / and its assets at /static
    return app
