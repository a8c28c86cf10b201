"""408 for a request body that stops arriving: the wait for each chunk is bounded (uvicorn has no such limit, so a
client that sends headers and then stalls would hold its connection, a thread and a spooled temp file forever)."""

from __future__ import annotations

import asyncio
import json

from haystack import logging
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import metrics
from app.api.errors import error_body

logger = logging.getLogger(__name__)


class _BodyReadTimeout(Exception):
    """Raised from `receive` when the next body chunk did not come in time."""


class BodyReadTimeoutMiddleware:
    """Pure ASGI middleware: while the request body is incomplete, each `receive()` may wait at most `timeout_s`;
    then the request is answered 408 with `Connection: close`. Once the body is complete, `receive()` is untouched
    (a streamed response waits on it for the client's disconnect)."""

    def __init__(self, app: ASGIApp, timeout_s: float) -> None:
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_complete = False
        timed_out = False
        replied = False

        async def bounded_receive() -> Message:
            nonlocal body_complete, timed_out
            if body_complete:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.timeout_s)
            except TimeoutError:
                timed_out = True
                raise _BodyReadTimeout from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_complete = True
            return message

        async def guarded_send(message: Message) -> None:
            # the app may turn the interrupted read into its own error (FastAPI: 400): answer 408 instead
            nonlocal replied
            if timed_out:
                if not replied and message["type"] == "http.response.start":
                    replied = True
                    await self._reject(send)
                return
            replied = replied or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, bounded_receive, guarded_send)
        except _BodyReadTimeout:
            pass
        if timed_out and not replied:
            await self._reject(send)

    async def _reject(self, send: Send) -> None:
        logger.warning("Request body stalled for {seconds} s: 408", seconds=self.timeout_s)
        body = json.dumps(
            error_body("request_timeout", f"the request body did not arrive within {self.timeout_s:g} s")
        ).encode()
        metrics.ERRORS.labels(type="request_timeout").inc()
        await send(
            {
                "type": "http.response.start",
                "status": 408,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
