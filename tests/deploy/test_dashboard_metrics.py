"""The Grafana dashboard (deploy/grafana/dashboards/) only charts metrics the app really exposes on GET /metrics.

The app runs in-process (TestClient) on the default profile with the tiny model; one upload and one query make the
counters and histograms of the ingest and query paths observe something before /metrics is read.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.main import create_app
from app.settings import Settings
from app.testing.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
TEXT = (
    "The lighthouse keeper of Port Ellen logs the weather every morning at six. "
    "In winter the lamp is lit at four in the afternoon and burns paraffin until dawn.\n"
)


def _load_checker() -> ModuleType:
    return load_script("check_dashboard")


checker = _load_checker()


@pytest.fixture(scope="module")
def metrics_text(tmp_path_factory, make_tiny_profile) -> str:
    """/metrics after one upload and one answered query, on the default profile with the tiny model."""
    root = tmp_path_factory.mktemp("deploy-metrics")
    pipelines = make_tiny_profile(root / "pipelines")
    settings = Settings(
        data_dir=root / "data",
        pipelines_dir=pipelines,
        max_upload_mb=1,
        dev_mode=True,
        metrics_collections={"deploy"},  # collection names are labels only when allow-listed
    )
    with TestClient(create_app(settings)) as client:
        upload = client.post(
            "/documents/upload",
            files=[("files", ("lighthouse.txt", TEXT.encode(), "text/plain"))],
            data={"collection": "deploy"},
        )
        assert upload.status_code == 200, upload.text
        answer = client.post("/query", json={"question": "When is the lamp lit in winter?", "collection": "deploy"})
        assert answer.status_code == 200, answer.text
        response = client.get("/metrics")
        assert response.status_code == 200
        return response.text


def _declared(text: str) -> set[str]:
    """Metric names declared by `# TYPE` lines (counters keep `_total`; labelled ones appear before first use too)."""
    return {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _total(text: str, name: str, **labels: str) -> float:
    """Sum of the samples named `name` whose labels include `labels`."""
    return sum(
        value
        for (sample, sample_labels), value in _samples(text).items()
        if sample == name and set(labels.items()) <= set(sample_labels)
    )


def test_dashboards_exist_and_pass_the_static_check():
    assert DASHBOARDS, "no dashboard in deploy/grafana/dashboards"
    uids = checker.provisioned_uids()
    assert uids
    for path in DASHBOARDS:
        assert checker.check_dashboard(path, uids) == []


@pytest.mark.parametrize("dashboard", DASHBOARDS, ids=[path.name for path in DASHBOARDS])
def test_every_dashboard_metric_is_exposed(metrics_text, dashboard):
    referenced = checker.metric_names(json.loads(dashboard.read_text()))
    assert referenced, f"{dashboard.name} references no metric"
    missing = sorted(referenced - _declared(metrics_text))
    assert not missing, f"{dashboard.name} charts metrics GET /metrics does not expose: {missing}"


def test_the_spec_metrics_are_exposed(metrics_text):
    """Every name of the metrics contract (scripts/check_dashboard.py) is registered, used by a panel or not."""
    missing = sorted(checker.KNOWN_METRICS - _declared(metrics_text))
    assert not missing, f"GET /metrics lacks {missing}"


def test_upload_and_query_are_counted(metrics_text):
    assert _total(metrics_text, "rag_uploads_total", collection="deploy", status="indexed") == 1
    assert _total(metrics_text, "rag_chunks_indexed_total", collection="deploy") >= 1
    assert _total(metrics_text, "rag_ingest_duration_seconds_count") >= 1
    assert _total(metrics_text, "rag_ingest_page_duration_seconds_count") >= 1
    for stage in ("retrieval", "generation", "total"):
        assert _total(metrics_text, "rag_query_duration_seconds_count", stage=stage) >= 1, stage
    assert _total(metrics_text, "rag_llm_tokens_total", direction="in") > 0
    assert _total(metrics_text, "rag_llm_tokens_total", direction="out") > 0
    assert _total(metrics_text, "rag_http_requests_total", method="POST", status="200") >= 2
    assert _total(metrics_text, "rag_http_request_duration_seconds_count", method="POST") >= 2
    assert _total(metrics_text, "rag_collections") >= 1
    assert _total(metrics_text, "rag_indexed_chunks") >= 1
