"""Per-request context: the request id (accepted from `X-Request-ID` or generated, echoed back), bound into every log
line the request causes; the request's log line and HTTP metrics, labelled by route template."""

from __future__ import annotations

import json
import re
import time
import uuid

import structlog
from haystack import logging
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import metrics
from app.api.errors import error_body

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
UNMATCHED_ROUTE = "<unmatched>"


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            if _VALID_ID.match(candidate):
                return candidate
    return uuid.uuid4().hex


class RequestContextMiddleware:
    """Pure ASGI middleware (streams pass through untouched)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                seconds = time.perf_counter() - started
                route = getattr(scope.get("route"), "path", None) or UNMATCHED_ROUTE
                method = scope.get("method", "")
                metrics.HTTP_REQUESTS.labels(method=method, route=route, status=str(status)).inc()
                metrics.HTTP_DURATION.labels(method=method, route=route).observe(seconds)
                logger.info(
                    "{method} {route} {status} in {duration_ms} ms",
                    method=method,
                    route=route,
                    status=status,
                    duration_ms=round(seconds * 1000.0, 1),
                )


class _BodyTooLarge(Exception):
    """Raised from `receive` when a body without a (truthful) Content-Length passes the limit."""


class BodySizeLimitMiddleware:
    """413 for request bodies over `max_bytes`, before they are read: at once when Content-Length says so, else as
    soon as the streamed body passes the limit (nothing more is read)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(send)
            return
        seen = 0
        exceeded = False
        replied = False

        async def limited_receive() -> Message:
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    exceeded = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            # the app may turn the interrupted read into its own error (FastAPI: 400): answer 413 instead
            nonlocal replied
            if exceeded:
                if not replied and message["type"] == "http.response.start":
                    replied = True
                    await self._reject(send)
                return
            replied = replied or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _BodyTooLarge:
            pass
        if exceeded and not replied:
            await self._reject(send)

    async def _reject(self, send: Send) -> None:
        limit_mb = self.max_bytes / 1024 / 1024
        body = json.dumps(error_body("payload_too_large", f"request body larger than {limit_mb:g} MiB")).encode()
        metrics.ERRORS.labels(type="payload_too_large").inc()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
