"""The pure ASGI middleware, outermost first (streams pass through untouched):

- `RequestContextMiddleware`: the request id (accepted from `X-Request-ID` or generated, echoed back), bound into every
  log line the request causes; the request's log line and HTTP metrics, labelled by route template.
- `ApiKeyMiddleware`: 401 (or 429) from the headers alone, before any body is read, for every non-public route.
- `BodySizeLimitMiddleware`: 413 for bodies over the limits (a small one for everything but multipart uploads).
"""

from __future__ import annotations

import json
import re
import time
import uuid

import structlog
from haystack import logging
from starlette.datastructures import MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import metrics
from app.api.auth import AUTHENTICATED_KEY, presented_key, verify
from app.api.errors import error_body, rag_error_response
from app.errors import RagError
from app.settings import Settings

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
UNMATCHED_ROUTE = "<unmatched>"


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            if _VALID_ID.fullmatch(candidate):
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


def _route_path(scope: Scope) -> str:
    """The path the router matches (without the `root_path` a proxy mounts the app under), like Starlette's."""
    path: str = scope.get("path", "")
    root = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("", "/"):
        return path[len(root) :]
    return path


class ApiKeyMiddleware:
    """Authenticates before the app runs: a request to any non-public path without a valid key (or over its key's
    rate limit) is answered 401 (429) from its headers, its body never read, parsed or spooled; the connection is
    then closed. The checked key is left in the request state for `app.api.auth.authenticate` (no second lookup);
    roles and collection scopes stay with the routes. Public: `RAG_PUBLIC_ENDPOINTS`, the demo page (`/`, `/static/`)
    and FastAPI's docs; nothing in dev mode. Unknown paths need a key too (their 404 tells which routes exist)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self.settings.dev_mode or self._public(scope):
            await self.app(scope, receive, send)
            return
        services = getattr(getattr(scope.get("app"), "state", None), "rag", None)
        if services is None:  # the lifespan has not built the services: nothing can be checked yet
            body = error_body("not_ready", "the service is starting")
            await self._answer(JSONResponse(body, status_code=503), scope, receive, send)
            return
        try:
            presented = presented_key(scope.get("headers", []))
            key = await verify(
                services.keys, services.rate_limiter, presented, services.auth_executor, services.collections.bound
            )
        except RagError as error:  # unknown, revoked or missing key (401); over its rate limit (429)
            await self._answer(rag_error_response(error), scope, receive, send)
            return
        scope.setdefault("state", {})[AUTHENTICATED_KEY] = key
        await self.app(scope, receive, send)

    def _public(self, scope: Scope) -> bool:
        path = _route_path(scope)
        if path == "/" or path.startswith("/static/"):
            return True
        if path.startswith("/") and path[1:] in self.settings.public_endpoints:
            return True
        app = scope.get("app")
        docs = ("docs_url", "redoc_url", "openapi_url", "swagger_ui_oauth2_redirect_url")
        return any(path == getattr(app, name, None) for name in docs)

    @staticmethod
    async def _answer(response: JSONResponse, scope: Scope, receive: Receive, send: Send) -> None:
        # the unread body cannot be skipped on a kept-alive connection without receiving it: close instead
        response.headers["Connection"] = "close"
        await response(scope, receive, send)


class _BodyTooLarge(Exception):
    """Raised from `receive` when a body without a (truthful) Content-Length passes the limit."""


class BodySizeLimitMiddleware:
    """413 for request bodies over the limit, before they are read: at once when Content-Length says so, else as
    soon as the streamed body passes the limit (nothing more is read). The limit is `max_bytes` for multipart
    uploads and `max_json_bytes` (when given, and smaller) for every other body: JSON, and bodies without a content
    type, which FastAPI parses as JSON, are read into memory whole."""

    def __init__(self, app: ASGIApp, max_bytes: int, max_json_bytes: int | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_json_bytes = max_bytes if max_json_bytes is None else min(max_json_bytes, max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: dict[bytes, bytes] = {}
        for name, value in scope.get("headers", []):
            headers.setdefault(name, value)  # the first of repeated headers, as the app reads them
        media_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        limit = self.max_bytes if media_type == b"multipart/form-data" else self.max_json_bytes
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._reject(send, limit)
            return
        seen = 0
        exceeded = False
        replied = False

        async def limited_receive() -> Message:
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    exceeded = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            # the app may turn the interrupted read into its own error (FastAPI: 400): answer 413 instead
            nonlocal replied
            if exceeded:
                if not replied and message["type"] == "http.response.start":
                    replied = True
                    await self._reject(send, limit)
                return
            replied = replied or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _BodyTooLarge:
            pass
        if exceeded and not replied:
            await self._reject(send, limit)

    async def _reject(self, send: Send, limit: int) -> None:
        size = f"{limit / 1024 / 1024:g} MiB" if limit % (1024 * 1024) == 0 else f"{limit / 1024:g} KiB"
        message = f"request body larger than {size}"
        if limit < self.max_bytes:
            message += "; only multipart file uploads may be larger"
        body = json.dumps(error_body("payload_too_large", message)).encode()
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
