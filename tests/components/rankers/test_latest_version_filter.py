"""LatestVersionFilter: a result never holds chunks of two versions of one document."""

from __future__ import annotations

from typing import Any

import pytest
from haystack import Document, Pipeline
from haystack.core.serialization import component_from_dict, component_to_dict

from components.rankers.latest_version_filter import LatestVersionFilter, chunk_version, latest_versions


def _chunk(cid: str, score: float, **meta: Any) -> Document:
    return Document(id=cid, content=f"text of {cid}", score=score, meta=meta)


def _ids(documents: list[Document]) -> list[str]:
    return [d.id for d in documents]


def _run(documents: list[Document]) -> list[Document]:
    return LatestVersionFilter().run(documents=documents)["documents"]


def test_older_version_chunks_go_when_the_newer_version_is_present() -> None:
    docs = [
        _chunk("old1", 0.9, collection="c", document_id="d", source_id="guide.txt", version=1),
        _chunk("new1", 0.8, collection="c", document_id="d", source_id="guide.txt", version=2),
        _chunk("old2", 0.7, collection="c", document_id="d", source_id="guide.txt", version=1),
        _chunk("new2", 0.6, collection="c", document_id="d", source_id="guide.txt", version=2),
    ]

    kept = _run(docs)

    assert _ids(kept) == ["new1", "new2"]
    assert [d.score for d in kept] == [0.8, 0.6]
    assert kept[0] is docs[1]  # the very objects, not copies


def test_a_result_with_one_version_only_is_kept_whole() -> None:
    """The old version alone (the new one not retrieved yet) is one consistent version: nothing to drop."""
    docs = [_chunk(f"old{i}", 1 - i / 10, collection="c", document_id="d", version=1) for i in range(3)]

    assert _run(docs) == docs


def test_three_versions_keep_the_highest_and_the_order_of_everything_else() -> None:
    docs = [
        _chunk("v2", 0.95, collection="c", document_id="d", version=2),
        _chunk("other", 0.9, collection="c", document_id="e", version=1),
        _chunk("v3", 0.85, collection="c", document_id="d", version=3),
        _chunk("v1", 0.8, collection="c", document_id="d", version=1),
        _chunk("other-old", 0.75, collection="c", document_id="e", version=1),
        _chunk("v3b", 0.7, collection="c", document_id="d", version=3),
    ]

    assert _ids(_run(docs)) == ["other", "v3", "other-old", "v3b"]


def test_chunks_indexed_before_versions_pass_untouched() -> None:
    docs = [
        _chunk("legacy1", 0.9, collection="c", document_id="old-doc", file_name="a.pdf"),
        _chunk("new", 0.8, collection="c", document_id="d", version=2),
        _chunk("legacy2", 0.7, collection="c", document_id="old-doc", file_name="a.pdf"),
        _chunk("old", 0.6, collection="c", document_id="d", version=1),
        _chunk("bare", 0.5),  # no meta at all
    ]

    assert _ids(_run(docs)) == ["legacy1", "new", "legacy2", "bare"]


def test_an_unversioned_chunk_is_older_than_a_versioned_chunk_of_the_same_document() -> None:
    """A document indexed before versions existed, replaced by `PUT /documents/{id}`: its first versioned upload keeps
    the document id, its old chunks have no version."""
    docs = [
        _chunk("legacy", 0.9, collection="c", document_id="d", file_name="a.pdf"),
        _chunk("new", 0.8, collection="c", document_id="d", source_id="a.pdf", version=2),
    ]

    assert _ids(_run(docs)) == ["new"]


def test_the_same_source_in_two_collections_is_two_documents() -> None:
    docs = [
        _chunk("c1-v1", 0.9, collection="c1", document_id="d1", source_id="guide.txt", version=1),
        _chunk("c2-v2", 0.8, collection="c2", document_id="d2", source_id="guide.txt", version=2),
        # even with equal document ids (not produced by the ingest, whose ids hash the collection in)
        _chunk("c3-v1", 0.7, collection="c3", document_id="same", version=1),
        _chunk("c4-v5", 0.6, collection="c4", document_id="same", version=5),
    ]

    assert _ids(_run(docs)) == ["c1-v1", "c2-v2", "c3-v1", "c4-v5"]


def test_chunks_without_a_document_id_are_grouped_by_source_id() -> None:
    docs = [
        _chunk("old", 0.9, collection="c", source_id="s", version=1),
        _chunk("new", 0.8, collection="c", source_id="s", version=2),
        _chunk("elsewhere", 0.7, collection="c", source_id="t", version=1),
    ]

    assert _ids(_run(docs)) == ["new", "elsewhere"]


def test_versions_as_the_stores_give_them_back() -> None:
    """Pinecone and Weaviate may give numbers back as floats; a string version still compares as a number."""
    docs = [
        _chunk("float-old", 0.9, collection="c", document_id="d", version=1.0),
        _chunk("float-new", 0.8, collection="c", document_id="d", version=2.0),
        _chunk("int-new", 0.7, collection="c", document_id="d", version=2),
        _chunk("str-10", 0.6, collection="c", document_id="e", version="10"),
        _chunk("str-9", 0.5, collection="c", document_id="e", version="9"),
    ]

    assert _ids(_run(docs)) == ["float-new", "int-new", "str-10"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [(3, 3.0), (2.0, 2.0), ("4", 4.0), (None, None), (True, None), ("v2", None), (float("nan"), None), ([1], None)],
)
def test_chunk_version(value: Any, expected: float | None) -> None:
    assert chunk_version({"version": value}) == expected


def test_empty_input() -> None:
    assert _run([]) == []


def test_latest_versions_reads_any_item_through_its_meta_accessor() -> None:
    rows = [
        {"id": "a", "meta": {"collection": "c", "document_id": "d", "version": 1}},
        {"id": "b", "meta": {"collection": "c", "document_id": "d", "version": 2}},
    ]

    assert latest_versions(rows, lambda row: row["meta"]) == [rows[1]]


def test_serialization_round_trip() -> None:
    data = component_to_dict(LatestVersionFilter(), "latest_versions")

    assert data == {"type": "components.rankers.latest_version_filter.LatestVersionFilter", "init_parameters": {}}
    assert isinstance(component_from_dict(LatestVersionFilter, data, "latest_versions"), LatestVersionFilter)


def test_in_yaml_pipeline_between_a_retriever_and_the_gate() -> None:
    yaml_text = """
components:
  latest_versions:
    type: components.rankers.latest_version_filter.LatestVersionFilter
    init_parameters: {}
  gate:
    type: components.routers.relevance_gate.RelevanceGate
    init_parameters:
      min_score: 0.3
connections:
  - {sender: latest_versions.documents, receiver: gate.documents}
"""
    pipe = Pipeline.loads(yaml_text, allowed_modules=["components"])
    retrieved = [
        _chunk("old", 0.9, collection="c", document_id="d", version=1),
        _chunk("new", 0.8, collection="c", document_id="d", version=2),
        _chunk("other", 0.7, collection="c", document_id="e", version=1),
    ]

    out = pipe.run({"latest_versions": {"documents": retrieved}, "gate": {"generate": False}})

    assert _ids(out["gate"]["passages"]) == ["new", "other"]
    assert out["gate"]["relevant"] is True
