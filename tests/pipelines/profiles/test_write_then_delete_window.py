"""A query in the window of a write-then-delete replacement, through the real services.

Weaviate and Pinecone keep Haystack's `DocumentWriter`, so the ingest writes a new version's chunks and only then
deletes the previous version's. The same path runs here on a local store: the tiny default profile with its
`DocumentReplacer` swapped for a `DocumentWriter` on the same LanceDB store; a query runs when the ingest is about to
delete the previous version, i.e. while the store holds both.
"""

from __future__ import annotations

from typing import Any

import pytest

from app.composition import ingest_service, load_pipeline_set, query_service
from app.settings import Settings
from app.testing.profiles import edit_yaml

pytestmark = pytest.mark.integration

QUESTION = "Which watch did the lamp of the keeper's log burn through?"


def _write_then_delete(indexing: dict[str, Any]) -> None:
    writer = indexing["components"]["writer"]
    assert writer["type"] == "components.writers.document_replacer.DocumentReplacer"
    writer["type"] = "haystack.components.writers.document_writer.DocumentWriter"
    writer["init_parameters"]["policy"] = "OVERWRITE"


def _paragraphs(word: str) -> bytes:
    sentences = [f"Paragraph {i} of the keeper's log is {word}: the lamp burned through watch {i}. " for i in range(4)]
    return "\n\n".join((sentence * 12).strip() for sentence in sentences).encode()


def test_a_query_between_the_write_and_the_delete_sees_one_version(tmp_path, make_tiny_profile) -> None:
    pipelines_dir = make_tiny_profile(tmp_path / "pipelines")
    edit_yaml(pipelines_dir / "indexing.yml", _write_then_delete)
    settings = Settings(data_dir=tmp_path / "data", pipelines_dir=pipelines_dir, rate_limit="off")
    pipelines = load_pipeline_set(settings)
    ingest, query = ingest_service(settings, pipelines), query_service(settings, pipelines)
    store = pipelines.document_store
    scope = {"field": "meta.collection", "operator": "==", "value": "log"}
    first = ingest.ingest_bytes(_paragraphs("original"), "log.txt", collection="log")
    assert (first.status, first.version) == ("indexed", 1)

    window: dict[str, Any] = {}
    delete = store.delete_by_filter

    def query_then_delete(filters: dict[str, Any]) -> int:
        removes_older = {"field": "meta.version", "operator": "!=", "value": 2} in filters.get("conditions", [])
        if removes_older and not window:  # the previous version's removal, right after the new version was written
            window["stored"] = {c.id: c.meta["version"] for c in store.filter_documents(scope)}
            window["sources"] = query.ask(QUESTION, collection="log", top_k=8, generate=False).sources
        return int(delete(filters))

    store.delete_by_filter = query_then_delete
    second = ingest.ingest_bytes(_paragraphs("rewritten"), "log.txt", collection="log")

    assert (second.status, second.version) == ("updated", 2)
    assert set(window["stored"].values()) == {1, 2}, "the store held both versions during the query"
    versions = {window["stored"][source.chunk_id] for source in window["sources"]}
    assert window["sources"] and versions == {2}, versions
    assert {c.meta["version"] for c in store.filter_documents(scope)} == {2}
