"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from haystack import logging
from haystack.document_stores.errors import DocumentStoreError

from app import metrics
from app.api.auth import public_or_key
from app.api.deps import State
from app.api.schemas import CheckResult, ReadyResponse
from app.upstream import upstream_error

logger = logging.getLogger(__name__)
router = APIRouter(tags=["health"])


@router.get("/health", summary="Liveness: the process answers", dependencies=[Depends(public_or_key("health"))])
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/ready",
    summary="Readiness: store reachable, pipelines loaded, models warmed up",
    response_model=ReadyResponse,
    dependencies=[Depends(public_or_key("ready"))],
)
async def ready(state: State) -> JSONResponse:
    checks: dict[str, CheckResult] = {"pipelines": CheckResult(status="ok")}
    try:
        count = await asyncio.to_thread(state.pipelines.document_store.count_documents)
        checks["store"] = CheckResult(status="ok", detail=f"{count} chunks")
    except (OSError, RuntimeError, ValueError, DocumentStoreError) as error:
        upstream = upstream_error(error)
        checks["store"] = CheckResult(status="error", detail=upstream.message if upstream else str(error))
    checks["models"] = CheckResult(status="ok" if state.warmed_up else "error")
    ok = all(c.status == "ok" for c in checks.values())
    body = ReadyResponse(status="ready" if ok else "not_ready", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    dependencies=[Depends(public_or_key("metrics"))],
)
async def prometheus_metrics(state: State) -> Response:
    try:  # gauges that describe the store are read at scrape time
        chunks = await asyncio.to_thread(state.pipelines.document_store.count_documents)
        collections = await asyncio.to_thread(state.collections.names)  # no per-collection counts
        metrics.INDEXED_CHUNKS.set(chunks)
        metrics.COLLECTIONS.set(len(collections))
    except (OSError, RuntimeError, ValueError, DocumentStoreError) as error:  # a scrape never fails on the store
        logger.warning("Store gauges not updated: {error}", error=str(error))
    body, content_type = metrics.exposition()
    return Response(body, media_type=content_type)
