"""One table maps domain errors to HTTP; every error body is `{"error": {"code", "message", "detail"}}`."""

from __future__ import annotations

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


def rag_error_response(error: RagError) -> JSONResponse:
    """The response to a domain error (counted in `rag_errors_total`); also an ASGI app, for pure ASGI middleware."""
    metrics.ERRORS.labels(type=error.code).inc()
    return JSONResponse(
        error_body(error.code, error.message, error.detail), status_code=_status_for(error), headers=error.headers
    )


async def _rag_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RagError)
    return rag_error_response(error)


async def _validation_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    detail = [{"loc": list(e.get("loc", [])), "msg": e.get("msg"), "type": e.get("type")} for e in error.errors()]
    metrics.ERRORS.labels(type="invalid_request").inc()
    return JSONResponse(error_body("invalid_request", "request validation failed", detail), status_code=422)


async def _http_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(error.status_code, "http_error")
    metrics.ERRORS.labels(type=code).inc()
    return JSONResponse(error_body(code, str(error.detail)), status_code=error.status_code, headers=error.headers)


async def _store_error(request: Request, error: Exception) -> JSONResponse:
    # Services call the store directly (listing, deleting): an unreachable store is a 503, anything else a 500.
    upstream = upstream_error(error)
    if upstream is not None:
        logger.warning(
            "Store unavailable on {method} {path}: {reason}",
            method=request.method,
            path=request.url.path,
            reason=upstream.message,
        )
        return await _rag_error(request, upstream)
    logger.error(
        "Document store error on {method} {path}: {error}",
        method=request.method,
        path=request.url.path,
        error=str(error),
    )
    metrics.ERRORS.labels(type="store_error").inc()
    return JSONResponse(error_body("store_error", "the document store failed"), status_code=500)


async def _unexpected(request: Request, error: Exception) -> JSONResponse:
    # The outermost boundary: an upstream failure that reached it unconverted still gets its 502/503/504;
    # anything else is logged with the route and never leaks internals to the client.
    upstream = upstream_error(error)
    if upstream is not None:
        logger.warning(
            "Upstream failure on {method} {path}: {reason}",
            method=request.method,
            path=request.url.path,
            reason=upstream.message,
        )
        return await _rag_error(request, upstream)
    logger.exception("Unhandled error on {method} {path}", method=request.method, path=request.url.path)
    metrics.ERRORS.labels(type="internal_error").inc()
    return JSONResponse(error_body("internal_error", "internal server error"), status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handler table on the app."""
    app.add_exception_handler(RagError, _rag_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DocumentStoreError, _store_error)
    app.add_exception_handler(Exception, _unexpected)
