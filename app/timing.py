"""Per-component timings of a pipeline run, collected through Haystack's tracing hook.

`timed_run()` opens a collection scope (a context variable, so concurrent requests and worker threads started
with `asyncio.to_thread` each see their own); the tracer adds the wall time of every `haystack.component.run`
span to it under the component's name. An inner tracer (e.g. OpenTelemetry) keeps working underneath.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from haystack import tracing
from haystack.tracing import Span, Tracer
from haystack.tracing.tracer import NullTracer

_current: ContextVar[dict[str, float] | None] = ContextVar("rag_component_timings", default=None)


class _NoopSpan(Span):
    def set_tag(self, key: str, value: Any) -> None:
        return None


class ComponentTimingTracer(Tracer):
    """Records component durations (ms) into the active `timed_run()` scope, delegating spans to `inner`."""

    def __init__(self, inner: Tracer | None = None) -> None:
        self.inner = inner if inner is not None and not isinstance(inner, NullTracer) else None

    @contextlib.contextmanager
    def trace(
        self, operation_name: str, tags: dict[str, Any] | None = None, parent_span: Span | None = None
    ) -> Iterator[Span]:
        timings = _current.get()
        name = (tags or {}).get("haystack.component.name") if operation_name == "haystack.component.run" else None
        start = time.perf_counter()
        try:
            if self.inner is not None:
                with self.inner.trace(operation_name, tags, parent_span) as span:
                    yield span
            else:
                yield _NoopSpan()
        finally:
            if timings is not None and name is not None:
                timings[name] = timings.get(name, 0.0) + (time.perf_counter() - start) * 1000.0

    def current_span(self) -> Span | None:
        return self.inner.current_span() if self.inner is not None else None


def install() -> None:
    """Make the timing tracer the global Haystack tracer (idempotent; keeps any tracer already set)."""
    actual = tracing.tracer.actual_tracer
    if not isinstance(actual, ComponentTimingTracer):
        tracing.enable_tracing(ComponentTimingTracer(inner=actual))


@contextlib.contextmanager
def timed_run() -> Iterator[dict[str, float]]:
    """Collect component timings (ms by component name) for the pipeline runs inside this block."""
    install()
    timings: dict[str, float] = {}
    token = _current.set(timings)
    try:
        yield timings
    finally:
        _current.reset(token)
