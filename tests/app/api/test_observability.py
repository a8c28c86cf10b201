"""Structured logs with a request id, Prometheus metrics and OpenTelemetry traces, through the real app."""

import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from app.logs import configure_logging
from app.timing import ComponentTimingTracer
from app.tracing import configure_tracing

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def store_profile():
    """Observability does not depend on the store: run once, on the embedded default."""
    return "default"


@pytest.fixture(scope="module")
def api_settings(api_settings):
    """The suite's settings, with `obs` allow-listed as a metrics label (collection names are hidden otherwise)."""
    return api_settings.model_copy(update={"metrics_collections": {"obs"}})


PASSAGE_MARKER = "Guido van Rossum"  # text of the indexed FAQ page: must never reach the logs at default level


@pytest.fixture(scope="module")
def indexed(client, html_file):
    files = [("files", (html_file.name, html_file.read_bytes()))]
    assert client.post("/documents/upload", files=files, data={"collection": "obs"}).status_code == 200
    return html_file.name


@pytest.fixture
def json_logs(api_settings):
    buffer = io.StringIO()
    configure_logging(api_settings.model_copy(update={"log_format": "json"}), stream=buffer)
    yield buffer
    configure_logging(api_settings)


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def _value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_one_request_id_on_every_line_of_a_query_and_no_document_text(client, indexed, json_logs, monkeypatch):
    response = client.post(
        "/query",
        json={"question": "Who created Python?", "collection": "obs", "top_k": 2},
        headers={"X-Request-ID": "req-obs-1"},
    )
    assert response.status_code == 200
    assert response.headers["X-Request-ID"] == "req-obs-1"
    lines = [json.loads(line) for line in json_logs.getvalue().splitlines() if line.strip()]
    mine = [line for line in lines if line.get("request_id") == "req-obs-1"]
    events = [line["event"] for line in mine]
    assert any(e.startswith("Query in obs: top_k=2") for e in events), events
    assert events.count("POST /query 200 in {} ms".format(mine[-1].get("duration_ms"))) == 1  # no duplicates
    query_line = next(line for line in mine if line["event"].startswith("Query in"))
    assert {"retrieval_ms", "generation_ms", "total_ms", "completion_tokens", "collection"} <= set(query_line)
    assert all(line.get("request_id") in (None, "req-obs-1") for line in lines)
    text = json_logs.getvalue()
    assert PASSAGE_MARKER not in text and "Who created Python" not in text
    assert "postgresql://rag:rag@" not in text


def test_generated_request_id_is_echoed(client):
    first = client.get("/health").headers["X-Request-ID"]
    second = client.get("/health").headers["X-Request-ID"]
    assert len(first) == 32 and first != second
    assert client.get("/health", headers={"X-Request-ID": "bad id with spaces"}).headers["X-Request-ID"] != (
        "bad id with spaces"
    )


def test_metrics_move_after_upload_and_queries(client, indexed, markdown_file):
    before = _samples(client.get("/metrics").text)
    files = [("files", (markdown_file.name, markdown_file.read_bytes()))]
    assert client.post("/documents/upload", files=files, data={"collection": "obs"}).status_code == 200
    assert client.post("/query", json={"question": "Who created Python?", "collection": "obs"}).status_code == 200
    with client.stream("POST", "/query/stream", json={"question": "What is Python?", "collection": "obs"}) as r:
        "".join(r.iter_text())
    assert client.delete("/documents/nope", params={"collection": "obs"}).status_code == 404
    after = _samples(client.get("/metrics").text)

    def delta(name, **labels):
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert delta("rag_uploads_total", collection="obs", status="indexed") == 1
    assert delta("rag_chunks_indexed_total", collection="obs") >= 1
    assert delta("rag_ingest_duration_seconds_count") == 1
    assert delta("rag_ingest_page_duration_seconds_count") == 1
    assert delta("rag_query_duration_seconds_count", stage="total") == 2
    assert delta("rag_query_duration_seconds_count", stage="retrieval") == 2
    assert delta("rag_query_duration_seconds_count", stage="generation") == 2
    assert delta("rag_query_duration_seconds_sum", stage="total") > 0
    assert delta("rag_llm_tokens_total", direction="out") > 0
    assert delta("rag_time_to_first_token_seconds_count") == 1
    assert delta("rag_http_requests_total", method="POST", route="/query", status="200") == 1
    assert delta("rag_http_requests_total", method="DELETE", route="/documents/{document_id}", status="404") == 1
    assert delta("rag_errors_total", type="not_found") == 1
    assert _value(after, "rag_collections") >= 1
    assert _value(after, "rag_indexed_chunks") >= delta("rag_chunks_indexed_total", collection="obs")
    assert not any("/documents/nope" in str(key) for key in after)  # raw paths never become labels


@pytest.fixture
def restore_tracer():
    from haystack import tracing

    yield
    actual = tracing.tracer.actual_tracer
    if isinstance(actual, ComponentTimingTracer):
        actual.inner = None


def test_component_spans_for_ingest_and_query(client, api_settings, restore_tracer, text_file):
    exporter = InMemorySpanExporter()
    provider = configure_tracing(api_settings, exporter=exporter)
    files = [("files", (text_file.name, text_file.read_bytes()))]
    assert client.post("/documents/upload", files=files, data={"collection": "traced"}).status_code == 200
    assert client.post("/query", json={"question": "What is Python?", "collection": "obs"}).status_code == 200
    provider.force_flush()
    spans = exporter.get_finished_spans()
    components = {s.attributes.get("haystack.component.name") for s in spans if s.name == "haystack.component.run"}
    assert {"router", "splitter", "embedder", "writer"} <= components  # ingest
    assert {"text_embedder", "embedding_retriever", "keyword_retriever", "gate", "llm"} <= components  # query
    assert sum(s.name == "haystack.pipeline.run" for s in spans) == 2
    component_span = next(s for s in spans if s.name == "haystack.component.run")
    assert component_span.parent is not None  # nested under its pipeline's span


def test_traces_are_exported_over_otlp_http(client, api_settings, restore_tracer):
    received: list[tuple[str, str]] = []

    class Collector(BaseHTTPRequestHandler):
        def log_message(self, *args):
            return

        def do_POST(self):
            self.rfile.read(int(self.headers.get("content-length", 0)))
            received.append((self.path, self.headers.get("content-type", "")))
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
        provider = configure_tracing(api_settings.model_copy(update={"otlp_endpoint": endpoint}))
        assert (
            client.post(
                "/query", json={"question": "What is Python?", "collection": "obs", "generate": False}
            ).status_code
            == 200
        )
        provider.force_flush()
    finally:
        server.shutdown()
    assert received and received[0] == ("/v1/traces", "application/x-protobuf")
