"""One table maps domain errors to HTTP; every error body is `{"error": {"code", "message", "detail"}}`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from haystack import logging
from haystack.document_stores.errors import DocumentStoreError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app import metrics
from app.errors import (
    AuthenticationError,
    ConflictError,
    ExtractionError,
    GenerationBusyError,
    GoneError,
    InvalidInputError,
    NotFoundError,
    OverloadedError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RagError,
    RateLimitedError,
    UnsupportedFileTypeError,
    UpstreamBadGatewayError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from app.upstream import upstream_error

logger = logging.getLogger(__name__)

STATUS_BY_ERROR: dict[type[RagError], int] = {
    InvalidInputError: 400,
    AuthenticationError: 401,
    PermissionDeniedError: 403,
    NotFoundError: 404,
    ConflictError: 409,
    GoneError: 410,
    PayloadTooLargeError: 413,
    UnsupportedFileTypeError: 415,
    ExtractionError: 422,
    RateLimitedError: 429,
    GenerationBusyError: 429,
    UpstreamBadGatewayError: 502,
    UpstreamUnavailableError: 503,
    OverloadedError: 503,
    UpstreamTimeoutError: 504,
}


def error_body(code: str, message: str, detail: Any = None) -> dict[str, Any]:
    """The JSON body of every error response."""
    return {"error": {"code": code, "message": message, "detail": detail}}


def _status_for(error: RagError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500


@dataclass(frozen=True)
class PublicError:
    """What a client is told about a failure: the HTTP status, code, message, detail and headers (never internals)."""

    status: int
    code: str
    message: str
    detail: Any = None
    headers: Mapping[str, str] | None = None


def public_error(error: BaseException) -> PublicError:
    """The reply the handler table gives for `error`; a streamed answer's `error` event uses the same code/message.

    Domain errors keep their code and message; a store error or anything unknown is `store_error` /
    `internal_error` with a generic message (the details belong in the log), unless it is an upstream failure.
    """
    if isinstance(error, RagError):
        return PublicError(_status_for(error), error.code, error.message, error.detail, error.headers)
    if isinstance(error, RequestValidationError):
        detail = [{"loc": list(e.get("loc", [])), "msg": e.get("msg"), "type": e.get("type")} for e in error.errors()]
        return PublicError(422, "invalid_request", "request validation failed", detail)
    if isinstance(error, StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed", 408: "request_timeout", 413: "payload_too_large"}.get(
            error.status_code, "http_error"
        )
        return PublicError(error.status_code, code, str(error.detail), None, error.headers)
    upstream = upstream_error(error)
    if upstream is not None:
        return public_error(upstream)
    if isinstance(error, DocumentStoreError):
        return PublicError(500, "store_error", "the document store failed")
    return PublicError(500, "internal_error", "internal server error")


def stream_error(error: BaseException) -> dict[str, str]:
    """A streamed answer's `error` event: exactly the code and message the JSON route answers for the same failure."""
    failure = public_error(error)
    metrics.ERRORS.labels(type=failure.code).inc()
    return {"code": failure.code, "message": failure.message}


def _reply(failure: PublicError) -> JSONResponse:
    metrics.ERRORS.labels(type=failure.code).inc()
    return JSONResponse(
        error_body(failure.code, failure.message, failure.detail),
        status_code=failure.status,
        headers=failure.headers,
    )


def rag_error_response(error: RagError) -> JSONResponse:
    """The response to a domain error (counted in `rag_errors_total`); also an ASGI app, for pure ASGI middleware."""
    return _reply(public_error(error))


async def _rag_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RagError)
    return rag_error_response(error)


async def _validation_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    return _reply(public_error(error))


async def _http_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    return _reply(public_error(error))


async def _store_error(request: Request, error: Exception) -> JSONResponse:
    # Services call the store directly (listing, deleting): an unreachable store is a 503, anything else a 500.
    failure = public_error(error)
    if failure.code == "store_error":
        logger.error(
            "Document store error on {method} {path}: {error}",
            method=request.method,
            path=request.url.path,
            error=str(error),
        )
    else:
        logger.warning(
            "Store unavailable on {method} {path}: {reason}",
            method=request.method,
            path=request.url.path,
            reason=failure.message,
        )
    return _reply(failure)


async def _unexpected(request: Request, error: Exception) -> JSONResponse:
    # The outermost boundary: an upstream failure that reached it unconverted still gets its 502/503/504;
    # anything else is logged with the route and never leaks internals to the client.
    failure = public_error(error)
    if failure.code == "internal_error":
        logger.exception("Unhandled error on {method} {path}", method=request.method, path=request.url.path)
    else:
        logger.warning(
            "Upstream failure on {method} {path}: {reason}",
            method=request.method,
            path=request.url.path,
            reason=failure.message,
        )
    return _reply(failure)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handler table on the app."""
    app.add_exception_handler(RagError, _rag_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DocumentStoreError, _store_error)
    app.add_exception_handler(Exception, _unexpected)
