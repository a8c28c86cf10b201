"""Issue 13, finding 5: the public `/metrics` named every collection (an unbounded label set), names that scoped keys
are otherwise kept from seeing. Now a name is a label only when an operator allow-lists it (RAG_METRICS_COLLECTIONS);
every other collection is counted as `other`."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from app import metrics
from app.main import create_app
from app.settings import Settings

SECRET = "secret-payroll"
COLLECTION_METRICS = ("rag_uploads_total", "rag_chunks_indexed_total")


def _upload(client: TestClient, collection: str, text: str) -> None:
    name = f"{collection}-{uuid.uuid4().hex[:8]}.txt"  # a new source each time (the module's tests share a data dir)
    files = [("files", (name, f"{text} for {collection}.".encode(), "text/plain"))]
    response = client.post("/documents/upload", files=files, data={"collection": collection})
    assert response.status_code == 200 and response.json()["files"][0]["status"] == "indexed", response.text


def _collection_labels(text: str) -> dict[str, float]:
    """`collection` label value -> summed samples of the per-collection counters."""
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in COLLECTION_METRICS:
                label = sample.labels["collection"]
                found[label] = found.get(label, 0.0) + sample.value
    return found


@pytest.fixture
def reset_metrics_config():
    yield
    metrics.configure(collections=())


def test_metrics_name_no_collection_after_ingesting_into_secret_payroll(security_settings, admin, reset_metrics_config):
    with TestClient(create_app(security_settings), headers=admin) as client:
        before = _collection_labels(client.get("/metrics").text)
        _upload(client, SECRET, "Salaries are paid on the 25th")
        scraped = client.get("/metrics", headers={"Authorization": ""})  # public: no key
    assert scraped.status_code == 200
    assert SECRET not in scraped.text
    after = _collection_labels(scraped.text)
    assert set(after) - set(before) <= {"other"}
    assert after["other"] - before.get("other", 0.0) >= 2  # the upload and its chunks are still counted


def test_an_allow_listed_collection_is_named_and_the_others_are_not(security_settings, admin, reset_metrics_config):
    allowed = security_settings.model_copy(update={"metrics_collections": {SECRET}})
    with TestClient(create_app(allowed), headers=admin) as client:
        before = set(_collection_labels(client.get("/metrics").text))  # what earlier tests in this process counted
        _upload(client, SECRET, "Bonuses are paid in December")
        _upload(client, "hidden-board-minutes", "The board met on Monday")
        scraped = client.get("/metrics").text
    assert f'rag_uploads_total{{collection="{SECRET}",status="indexed"}}' in scraped
    assert "hidden-board-minutes" not in scraped
    assert set(_collection_labels(scraped)) - before <= {SECRET, "other"}


def test_collection_label_cardinality_is_bounded(reset_metrics_config):
    before = set(_collection_labels(metrics.exposition()[0].decode()))
    metrics.configure(collections={"alpha"})
    for n in range(200):
        metrics.record_ingest(f"tenant-{n}", "indexed", pages=1, chunks=1, seconds=0.01)
    metrics.record_ingest("alpha", "indexed", pages=1, chunks=1, seconds=0.01)
    text = metrics.exposition()[0].decode()
    assert "tenant-7" not in text
    assert set(_collection_labels(text)) - before <= {"alpha", "other"}


def test_the_allow_list_setting(monkeypatch):
    monkeypatch.setenv("RAG_METRICS_COLLECTIONS", "alpha, beta-2 ,")
    assert Settings(_env_file=None).metrics_collections == {"alpha", "beta-2"}
    monkeypatch.delenv("RAG_METRICS_COLLECTIONS")
    assert Settings(_env_file=None).metrics_collections == set()
    for bad in ("../etc", "a\nb", "other"):
        with pytest.raises(ValidationError):
            Settings(metrics_collections={bad})
