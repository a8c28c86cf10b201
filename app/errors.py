"""Domain errors of the service layer. The HTTP layer maps each class to a status code in one table."""

from __future__ import annotations

from typing import Any


class RagError(Exception):
    """Base class: a clear, user-facing reason plus optional structured detail (and HTTP headers to send)."""

    code = "rag_error"

    def __init__(self, message: str, *, detail: Any = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail
        self.headers = headers


class InvalidInputError(RagError):
    """The request is malformed (bad collection name, tag, filter, top_k...)."""

    code = "invalid_input"


class UnsupportedFileTypeError(RagError):
    """No converter in the indexing pipeline accepts this file type."""

    code = "unsupported_file_type"


class ExtractionError(RagError):
    """The file could not be read or yielded no text."""

    code = "extraction_failed"


class ParseTimeoutError(ExtractionError):
    """Parsing the file took longer than RAG_PARSE_TIMEOUT_S; its parser was stopped."""

    code = "parse_timeout"


class AuthenticationError(RagError):
    """No API key, or one that is unknown or revoked."""

    code = "unauthorized"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class PermissionDeniedError(RagError):
    """The API key is valid but its role or collection scope does not allow the request."""

    code = "forbidden"


class RateLimitedError(RagError):
    """The API key sent more requests than its rate limit allows; retry after `retry_after` seconds."""

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, detail={"retry_after": retry_after}, headers={"Retry-After": str(retry_after)})


class GenerationQueueFullError(RagError):
    """The model's queue cannot take this generation now; retry after `retry_after` seconds (base class)."""

    code = "generation_queue_full"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, detail={"retry_after": retry_after}, headers={"Retry-After": str(retry_after)})


class GenerationBusyError(GenerationQueueFullError):
    """This API key already has RAG_GENERATION_QUEUE_PER_KEY generations waiting or running: HTTP 429."""

    code = "generation_busy"


class OverloadedError(GenerationQueueFullError):
    """The model's queue holds RAG_GENERATION_QUEUE generations (all keys together): HTTP 503."""

    code = "overloaded"


class NotFoundError(RagError):
    """A collection or document does not exist."""

    code = "not_found"


class ConflictError(RagError):
    """The resource already exists."""

    code = "conflict"


class GoneError(RagError):
    """The resource existed but what the request needs of it was removed for good."""

    code = "gone"


class UploadsRemovedError(GoneError):
    """A job cannot be retried: the retention sweep removed its spooled uploads (RAG_JOB_RETENTION_DAYS)."""

    code = "uploads_removed"


class PayloadTooLargeError(RagError):
    """An upload is larger than the configured limit."""

    code = "payload_too_large"


class UpstreamError(RagError):
    """A service this one depends on (LLM, embedder, document store) failed; the request may succeed later."""

    code = "upstream_error"


class UpstreamUnavailableError(UpstreamError):
    """The upstream refused or could not be reached (rate limit 429, connection refused, store down): HTTP 503."""

    code = "upstream_unavailable"


class IndexingWorkerError(UpstreamUnavailableError):
    """The indexing worker process died while it indexed the file (killed, out of memory): HTTP 503, retryable."""

    code = "indexing_worker_died"


class UpstreamBadGatewayError(UpstreamError):
    """The upstream answered with a server error (5xx) or broke the connection mid-answer: HTTP 502."""

    code = "upstream_bad_gateway"


class UpstreamTimeoutError(UpstreamError):
    """The upstream did not answer in time (after retries): HTTP 504."""

    code = "upstream_timeout"
