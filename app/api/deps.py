"""Per-app state and its Annotated dependencies (no DI container: one object built in the lifespan)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from app.pipeline_loader import PipelineSet
from app.services.api_keys import KeyStore
from app.services.collections import CollectionService
from app.services.documents import DocumentService
from app.services.file_checks import FileLimits
from app.services.ingest import IngestService
from app.services.jobs import JobService, JobStore
from app.services.query import QueryService
from app.services.rate_limit import RateLimiter
from app.settings import Settings


@dataclass
class RagState:
    """Everything the routes need, created once at start-up."""

    settings: Settings
    pipelines: PipelineSet
    ingest: IngestService
    query: QueryService
    collections: CollectionService
    documents: DocumentService
    keys: KeyStore
    rate_limiter: RateLimiter
    jobs: JobService
    ingest_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(1))
    warmed_up: bool = False

    @classmethod
    def build(cls, settings: Settings, pipelines: PipelineSet) -> RagState:
        store = pipelines.document_store
        return cls(
            settings=settings,
            pipelines=pipelines,
            ingest=IngestService(
                pipelines,
                limits=FileLimits(
                    max_pdf_pages=settings.max_pdf_pages,
                    max_image_pixels=settings.max_image_pixels,
                    max_unzipped_mb=settings.max_unzipped_mb,
                ),
            ),
            query=QueryService(
                pipelines,
                default_top_k=settings.default_top_k,
                max_top_k=settings.max_top_k,
                max_question_chars=settings.max_question_chars,
                log_content=settings.log_content,
            ),
            collections=CollectionService(store, settings.collections_registry),
            documents=DocumentService(store),
            keys=KeyStore(settings.keys_db),
            rate_limiter=RateLimiter(settings.rate_limit, settings.rate_limit_storage),
            jobs=JobService(JobStore(settings.jobs_db), settings.jobs_dir),
            ingest_slots=asyncio.Semaphore(settings.ingest_concurrency),
        )


def get_state(request: Request) -> RagState:
    """The app's RagState (set by the lifespan)."""
    state: RagState = request.app.state.rag
    return state


State = Annotated[RagState, Depends(get_state)]
