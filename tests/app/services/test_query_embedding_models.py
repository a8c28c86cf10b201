"""Chunks embedded by another model than the query embedder's are counted and named in the log, once per collection."""

import logging

import pytest
from haystack import Document
from prometheus_client import REGISTRY

from app.composition import build_services
from app.settings import Settings

pytestmark = pytest.mark.integration


def _stale_queries() -> float:
    return REGISTRY.get_sample_value("rag_stale_embedding_queries_total") or 0.0


@pytest.fixture
def services(tmp_path, make_tiny_profile, monkeypatch):
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RAG_PIPELINES_DIR", str(make_tiny_profile(tmp_path / "pipelines")))
    services = build_services(Settings())
    note = tmp_path / "kettle.txt"
    note.write_text("The kettle warranty lasts two years from the date of purchase.\n", encoding="utf-8")
    assert services.ingest.ingest_path(note, collection="home").chunks >= 1
    return services


def test_chunks_of_the_query_embedders_model_pass_silently(services, caplog):
    model = services.pipelines.query_embedding_model
    assert model == "all-MiniLM-L6-v2-dynamic-int8"  # the default profile's text_embedder, by role
    stored = services.pipelines.document_store.filter_documents()
    assert {d.meta.get("embedding_model") for d in stored} == {model}  # what indexing wrote, as the check reads it
    before = _stale_queries()
    with caplog.at_level(logging.WARNING):
        result = services.query.ask("How long is the kettle warranty?", collection="home", generate=False)
    assert result.sources and _stale_queries() == before
    assert "embedded by" not in caplog.text


def test_chunks_of_another_model_are_counted_and_logged_once_per_collection(services, caplog):
    store = services.pipelines.document_store
    [indexed] = store.filter_documents()
    old = Document(  # as a chunk indexed before the YAML named another embedder: same size, other vector space
        id="old-chunk",
        content="The kettle descaling takes ten minutes with citric acid.",
        embedding=indexed.embedding,
        meta={**indexed.meta, "embedding_model": "all-MiniLM-L12-v2", "chunk_hash": "old"},
    )
    store.write_documents([old])
    before = _stale_queries()
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            result = services.query.ask("kettle descaling", collection="home", generate=False)
            assert "old-chunk" in {s.chunk_id for s in result.sources}
    assert _stale_queries() == before + 2  # every query that met one
    lines = [r.getMessage() for r in caplog.records if "embedded by" in r.getMessage()]
    assert len(lines) == 1  # the log names it once per collection and model
    assert "home" in lines[0] and "all-MiniLM-L12-v2" in lines[0] and "all-MiniLM-L6-v2-dynamic-int8" in lines[0]
