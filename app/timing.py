"""Per-component timings of a pipeline run, collected through Haystack's tracing hook.

`timed_run()` opens a collection scope (a context variable, so concurrent requests and worker threads started
with `asyncio.to_thread` each see their own); the tracer adds the wall time of every `haystack.component.run`
span to it under the component's name. An inner tracer (e.g. OpenTelemetry) keeps working underneath.

`watch_components(watcher)` does the same for a `ComponentWatcher`: it is told when each component starts, what
it received and what it returned (background jobs derive their stage and progress from it). A watcher may raise
in `started` to stop the pipeline before that component runs.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any, Protocol

from haystack import tracing
from haystack.tracing import Span, Tracer
from haystack.tracing.tracer import NullTracer

_current: ContextVar[dict[str, float] | None] = ContextVar("rag_component_timings", default=None)
_INPUT = "haystack.component.input"
_OUTPUT = "haystack.component.output"


class ComponentWatcher(Protocol):
    """Told about every component run of the pipelines run inside `watch_components()`."""

    def started(self, name: str, type_name: str) -> None: ...

    def received(self, name: str, type_name: str, inputs: dict[str, Any]) -> None: ...

    def returned(self, name: str, type_name: str, outputs: dict[str, Any]) -> None: ...


_watcher: ContextVar[ComponentWatcher | None] = ContextVar("rag_component_watcher", default=None)


class _Watchers:
    """Several watchers told in turn."""

    def __init__(self, watchers: tuple[ComponentWatcher, ...]) -> None:
        self.watchers = watchers

    def started(self, name: str, type_name: str) -> None:
        for watcher in self.watchers:
            watcher.started(name, type_name)

    def received(self, name: str, type_name: str, inputs: dict[str, Any]) -> None:
        for watcher in self.watchers:
            watcher.received(name, type_name, inputs)

    def returned(self, name: str, type_name: str, outputs: dict[str, Any]) -> None:
        for watcher in self.watchers:
            watcher.returned(name, type_name, outputs)


class _NoopSpan(Span):
    def set_tag(self, key: str, value: Any) -> None:
        return None


class _WatchedSpan(Span):
    """Passes a component's inputs and outputs to the watcher, everything else to the real span."""

    def __init__(self, inner: Span, watcher: ComponentWatcher, name: str, type_name: str) -> None:
        self.inner, self.watcher, self.name, self.type_name = inner, watcher, name, type_name

    def set_tag(self, key: str, value: Any) -> None:
        self.inner.set_tag(key, value)

    def set_content_tag(self, key: str, value: Any) -> None:
        if key == _INPUT and isinstance(value, dict):
            self.watcher.received(self.name, self.type_name, value)
        elif key == _OUTPUT and isinstance(value, dict):
            self.watcher.returned(self.name, self.type_name, value)
        self.inner.set_content_tag(key, value)

    def raw_span(self) -> Any:
        return self.inner.raw_span()

    def get_correlation_data_for_logs(self) -> dict[str, Any]:
        return self.inner.get_correlation_data_for_logs()


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
        watcher = _watcher.get() if name is not None else None
        type_name = str((tags or {}).get("haystack.component.type", ""))
        if watcher is not None:
            watcher.started(str(name), type_name)
        start = time.perf_counter()
        try:
            if self.inner is not None:
                with self.inner.trace(operation_name, tags, parent_span) as span:
                    yield span if watcher is None else _WatchedSpan(span, watcher, str(name), type_name)
            else:
                yield _NoopSpan() if watcher is None else _WatchedSpan(_NoopSpan(), watcher, str(name), type_name)
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


@contextlib.contextmanager
def watch_components(*watchers: ComponentWatcher | None) -> Iterator[None]:
    """Report the component runs of the pipelines run inside this block (this thread or task only) to the `watchers`
    (None among them is skipped)."""
    install()
    present = tuple(w for w in watchers if w is not None)
    token = _watcher.set(present[0] if len(present) == 1 else _Watchers(present) if present else None)
    try:
        yield
    finally:
        _watcher.reset(token)
