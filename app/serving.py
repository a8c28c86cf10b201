"""How `rag serve` runs uvicorn: h11 with bounded header size and time, a short keep-alive.

uvicorn closes idle keep-alive connections but never times out a request whose headers trickle in: a client that
sends half a request line holds its connection (and a slot of `--limit-concurrency`) forever. `SlowHeaderH11Protocol`
closes a connection whose request line and headers are not complete `RAG_HEADER_READ_TIMEOUT_S` after it opened (or
after the previous response). The body's pace is bounded by `app.api.body_timeout.BodyReadTimeoutMiddleware`.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import h11
from haystack import logging
from uvicorn.protocols.http.h11_impl import H11Protocol

from app.settings import Settings

logger = logging.getLogger(__name__)


@functools.cache
def _header_timeout_s() -> float:
    # read once per process: `rag serve --workers N` spawns workers that import this class by name
    return Settings().header_read_timeout_s


class SlowHeaderH11Protocol(H11Protocol):
    """uvicorn's h11 protocol plus a deadline for the request line and headers of every request."""

    header_timeout_s: float | None = None  # None: RAG_HEADER_READ_TIMEOUT_S

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_deadline: asyncio.TimerHandle | None = None
        self._arm_header_deadline()

    def _arm_header_deadline(self) -> None:
        self._cancel_header_deadline()
        seconds = self.header_timeout_s if self.header_timeout_s is not None else _header_timeout_s()
        self._header_deadline = self.loop.call_later(seconds, self._headers_too_slow)

    def _cancel_header_deadline(self) -> None:
        deadline = getattr(self, "_header_deadline", None)
        if deadline is not None:
            deadline.cancel()
            self._header_deadline = None

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state is not h11.IDLE:  # the request line and headers are in
            self._cancel_header_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm_header_deadline()  # the next request's headers get the same deadline

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_deadline()
        super().connection_lost(exc)

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        logger.warning("Closed a connection whose request headers did not arrive in time (slow client)")
        self.transport.close()


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The `uvicorn.run` options of `rag serve` that bound what a slow or large request can hold."""
    return {
        "http": SlowHeaderH11Protocol,
        "timeout_keep_alive": settings.keep_alive_timeout_s,
        "h11_max_incomplete_event_size": settings.max_header_bytes,
    }
