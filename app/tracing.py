"""Tracing: Haystack's OpenTelemetry tracer (opentelemetry-haystack), enabled by `RAG_OTLP_ENDPOINT`.

Haystack opens a span per pipeline run and per component run (`haystack.pipeline.run`, `haystack.component.run`
with the component's name and type), for ingest and query alike; they are exported over OTLP/HTTP in batches.
The per-request timing tracer (`app.timing`) keeps working on top of it. Span content (inputs/outputs) is only
recorded when `HAYSTACK_CONTENT_TRACING_ENABLED=true`, which also puts document text into traces.
OpenTelemetry is the `tracing` extra: it is imported only when tracing is enabled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from haystack import logging, tracing

from app.extras import extra_required
from app.settings import Settings
from app.timing import ComponentTimingTracer

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

logger = logging.getLogger(__name__)


def configure_tracing(settings: Settings, *, exporter: SpanExporter | None = None) -> TracerProvider | None:
    """Install the OpenTelemetry tracer when an endpoint (or, in tests, an exporter) is given; else do nothing."""
    if exporter is None and not settings.otlp_endpoint:
        return None
    with extra_required("tracing", "Tracing (RAG_OTLP_ENDPOINT)"):
        from haystack_integrations.tracing.opentelemetry import OpenTelemetryTracer
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": settings.service_name}))
    processor: SpanProcessor = BatchSpanProcessor(exporter or OTLPSpanExporter(endpoint=settings.otlp_endpoint))
    provider.add_span_processor(processor)
    otel = OpenTelemetryTracer(provider.get_tracer("ragstack"))
    actual = tracing.tracer.actual_tracer
    if isinstance(actual, ComponentTimingTracer):
        actual.inner = otel
    else:
        tracing.enable_tracing(ComponentTimingTracer(inner=otel))
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(provider)
    logger.info("Tracing enabled: OTLP export to {endpoint}", endpoint=settings.otlp_endpoint or "custom exporter")
    return provider
