"""Prometheus metrics: every metric of the service, defined once, plus the `/metrics` exposition.

Labels are bounded: HTTP routes are route templates (`/documents/{document_id}`), never raw paths; `collection` is a
collection name only when the operator allow-lists it (RAG_METRICS_COLLECTIONS, set by `configure`), every other
collection is `other` (the endpoint is public by default, and names are what scoped keys are kept from seeing);
`stage`, `direction`, `status` and `type` are fixed sets.

Several uvicorn workers: `rag serve --workers N` (N > 1) points `PROMETHEUS_MULTIPROC_DIR` at a fresh folder before
the workers start, and `/metrics` then aggregates every worker's samples (prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_INGEST_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
_PAGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)

HTTP_REQUESTS = Counter(
    "rag_http_requests", "HTTP requests by route template and status", ["method", "route", "status"]
)
HTTP_DURATION = Histogram(
    "rag_http_request_duration_seconds", "HTTP request duration", ["method", "route"], buckets=_LATENCY_BUCKETS
)
OTHER_COLLECTIONS = "other"  # the `collection` label of every collection not in the allow-list

UPLOADS = Counter(
    "rag_uploads",
    "Uploaded files by collection (allow-listed names, else other) and outcome (indexed, duplicate, failed)",
    ["collection", "status"],
)
CHUNKS_INDEXED = Counter(
    "rag_chunks_indexed", "Chunks written to the store, by collection (allow-listed names, else other)", ["collection"]
)
INGEST_DURATION = Histogram("rag_ingest_duration_seconds", "Time to index one file", buckets=_INGEST_BUCKETS)
INGEST_PAGE_DURATION = Histogram(
    "rag_ingest_page_duration_seconds", "Indexing time per page (file time / pages)", buckets=_PAGE_BUCKETS
)
QUERY_DURATION = Histogram(
    "rag_query_duration_seconds",
    "Query duration by stage (retrieval, generation, total)",
    ["stage"],
    buckets=_LATENCY_BUCKETS,
)
LLM_TOKENS = Counter("rag_llm_tokens", "LLM tokens: prompt (in) and completion (out)", ["direction"])
TIME_TO_FIRST_TOKEN = Histogram(
    "rag_time_to_first_token_seconds", "Streamed answers: request start to first token", buckets=_LATENCY_BUCKETS
)
COLLECTIONS = Gauge("rag_collections", "Collections (updated at scrape time)", multiprocess_mode="mostrecent")
INDEXED_CHUNKS = Gauge(
    "rag_indexed_chunks", "Chunks in the store (updated at scrape time)", multiprocess_mode="mostrecent"
)
GENERATION_QUEUE_DEPTH = Gauge(
    "rag_generation_queue_depth",
    "Generations (calls that reach the LLM) admitted to the model's queue: waiting plus running",
    multiprocess_mode="livesum",
)
ERRORS = Counter("rag_errors", "Error responses and stream errors by error code", ["type"])
STALE_EMBEDDINGS = Counter(
    "rag_stale_embedding_queries",
    "Queries that retrieved chunks embedded by another model than the query embedder's (index them again)",
)


_labelled_collections: frozenset[str] = frozenset()
_recording = True


def configure(*, collections: Iterable[str] = ()) -> None:
    """The collections whose names may appear as `collection` labels (RAG_METRICS_COLLECTIONS; none by default)."""
    global _labelled_collections
    _labelled_collections = frozenset(collections)


def stop_recording() -> None:
    """Record nothing in this process: an indexing worker's files are recorded by its server, which exports them."""
    global _recording
    _recording = False


def collection_label(collection: str) -> str:
    """`collection` when allow-listed, else `other`: the label set is bounded and shows no name unless chosen."""
    return collection if collection in _labelled_collections else OTHER_COLLECTIONS


def record_ingest(collection: str, status: str, pages: int, chunks: int, seconds: float) -> None:
    """One file's ingest outcome."""
    if not _recording:
        return
    label = collection_label(collection)
    UPLOADS.labels(collection=label, status=status).inc()
    if status == "indexed":
        CHUNKS_INDEXED.labels(collection=label).inc(chunks)
        INGEST_DURATION.observe(seconds)
        if pages:
            INGEST_PAGE_DURATION.observe(seconds / pages)


def record_query(timings_ms: dict[str, float], *, generated: bool) -> None:
    """Stage durations of one query (generation only when the LLM ran)."""
    QUERY_DURATION.labels(stage="retrieval").observe(timings_ms.get("retrieval", 0.0) / 1000.0)
    if generated:
        QUERY_DURATION.labels(stage="generation").observe(timings_ms.get("generation", 0.0) / 1000.0)
    QUERY_DURATION.labels(stage="total").observe(timings_ms.get("total", 0.0) / 1000.0)


def record_stale_embeddings() -> None:
    """A query retrieved chunks whose embeddings another model made: their vector ranking means nothing."""
    STALE_EMBEDDINGS.inc()


def record_tokens(prompt: int | None, completion: int | None) -> None:
    """LLM token counts, when the generator reports them."""
    if prompt:
        LLM_TOKENS.labels(direction="in").inc(prompt)
    if completion:
        LLM_TOKENS.labels(direction="out").inc(completion)


def exposition() -> tuple[bytes, str]:
    """The text format of every metric; aggregated over workers in multiprocess mode."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
