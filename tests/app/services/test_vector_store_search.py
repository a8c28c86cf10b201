"""The vector store search service over a stub query service: merging, scores in [0, 1], attributes, the rewrite."""

from __future__ import annotations

from typing import Any

import pytest
from haystack import Document

from app.errors import InvalidInputError
from app.services.query import QueryResult, Source
from app.services.vector_store_search import VectorStoreSearch, attributes, rewrite_query, unit_scores


class StubQuery:
    """Answers each question with the given (chunk id, score) list and records the calls."""

    max_top_k = 50

    def __init__(self, results: dict[str, list[tuple[str, float | None]]]) -> None:
        self.results = results
        self.calls: list[dict[str, Any]] = []

    def ask(self, question: str, **kwargs: Any) -> QueryResult:
        self.calls.append({"question": question, **kwargs})
        sources = [
            Source(n=i + 1, document_id=f"doc-{cid}", filename=f"{cid}.txt", page=None, chunk_id=cid, score=s, text=cid)
            for i, (cid, s) in enumerate(self.results[question])
        ]
        return QueryResult(answer=None, sources=sources, timings_ms={})


class StubStore:
    def __init__(self, metas: dict[str, dict[str, Any]]) -> None:
        self.metas = metas

    def filter_documents(self, filters: dict[str, Any]) -> list[Document]:
        ids = filters["conditions"][1]["value"]
        return [Document(id=i, content=i, meta=self.metas[i]) for i in ids if i in self.metas]


META = {
    "a": {"file_name": "a.pdf", "collection": "c", "document_id": "doc-a", "page": 3, "chunk_index": 0, "team": "qa"},
    "b": {
        "file_name": "b.txt",
        "collection": "c",
        "document_id": "doc-b",
        "file_id": "file-b",
        "year": 2020,
        "region": None,
        "_split_overlap": [],
        "context_header": "B",
        "ocr": False,
    },
}


def test_queries_are_merged_by_chunk_keeping_the_best_score_and_the_store_is_touched():
    query = StubQuery({"one": [("a", 0.4), ("b", 0.9)], "two": [("a", 0.8), ("c", 0.1)]})
    touched: list[str] = []
    search = VectorStoreSearch(query, StubStore(META), touch=touched.append)  # type: ignore[arg-type]
    page = search.search("c", ["one", " two "], max_num_results=2, filters={"type": "eq", "key": "team", "value": "qa"})
    assert page.search_query == ["one", "two"]
    assert [(h.chunk_id, h.score) for h in page.hits] == [("b", 0.9), ("a", 0.8)]
    assert touched == ["c"]
    assert query.calls[0]["filters"] == {"field": "meta.team", "operator": "==", "value": "qa"}
    assert {c["top_k"] for c in query.calls} == {2} and all(c["generate"] is False for c in query.calls)
    b, a = page.hits
    assert (b.file_id, b.filename, b.document_id, b.attributes) == ("file-b", "b.txt", "doc-b", {"year": 2020})
    assert (a.file_id, a.page, a.attributes) == ("doc-a", 3, {"team": "qa"})


def test_score_threshold_drops_weaker_hits_and_a_chunk_without_metadata_keeps_what_its_source_knows():
    search = VectorStoreSearch(StubQuery({"q": [("a", 0.7), ("x", 0.5), ("b", 0.2)]}), StubStore(META))  # type: ignore[arg-type]
    page = search.search("c", "q", score_threshold=0.5)
    assert [h.chunk_id for h in page.hits] == ["a", "x"]
    x = page.hits[1]
    assert (x.file_id, x.filename, x.attributes, x.page) == ("doc-x", "x.txt", {}, None)


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"query": []}, "1 to 10 strings"),
        ({"query": ["q"] * 11}, "1 to 10 strings"),
        ({"query": ["q", "  "]}, "non-empty string"),
        ({"query": "q", "max_num_results": 51}, "between 1 and 50"),
        ({"query": "q", "score_threshold": -0.1}, "between 0 and 1"),
        ({"query": "q", "filters": {"type": "eq", "key": "a b", "value": 1}}, "invalid filter key"),
    ],
)
def test_bad_input_is_refused_before_any_retrieval(kwargs, reason):
    query = StubQuery({"q": []})
    with pytest.raises(InvalidInputError, match=reason):
        VectorStoreSearch(query, StubStore({})).search("c", **kwargs)  # type: ignore[arg-type]
    assert query.calls == []


@pytest.mark.parametrize(
    ("text", "rewritten"),
    [
        ("How do I install apt-get on Debian?", "install apt-get Debian"),
        ("What is the R-intro.pdf about?", "R-intro.pdf"),
        ("Why does “C++” need a compiler, and which one?", "C++ need compiler one"),
        ("what is it?", "what is it?"),  # nothing would be left: unchanged
        ("  lamp  ", "lamp"),
    ],
)
def test_the_rewrite_keeps_the_content_words(text, rewritten):
    assert rewrite_query(text) == rewritten


def test_scores_in_the_unit_interval_are_kept_and_others_squashed_in_order():
    assert unit_scores([1.0, 0.5, None, 0.0]) == [1.0, 0.5, 0.0, 0.0]
    squashed = unit_scores([7.5, 0.3, -2.0, float("nan")])
    assert all(0.0 <= s <= 1.0 for s in squashed)
    assert squashed[0] > squashed[1] > squashed[2] and squashed[3] == 0.0
    assert unit_scores([1e6, -1e6]) == pytest.approx([1.0, 0.0])  # no overflow


def test_attributes_are_the_user_tags_only():
    assert attributes(META["b"]) == {"year": 2020}


def _versioned(version: int, document_id: str = "doc-guide") -> dict[str, Any]:
    return {"collection": "c", "document_id": document_id, "source_id": "guide.txt", "version": version}


class SharedDocumentQuery(StubQuery):
    """Like StubQuery, every chunk `v<n>-...` being a chunk of one document (`doc-guide`)."""

    def ask(self, question: str, **kwargs: Any) -> QueryResult:
        result = super().ask(question, **kwargs)
        for source in result.sources:
            if source.chunk_id.startswith("v"):
                source.document_id = "doc-guide"
        return result


def test_a_version_replaced_between_two_queries_does_not_mix_in_the_merged_page():
    """Each query's result holds one version; the first query ran before the new version was written, the second
    after: the merged page keeps the new version's chunks and every other document's."""
    query = SharedDocumentQuery({"one": [("v1-a", 0.9), ("a", 0.5)], "two": [("v2-a", 0.8), ("v2-b", 0.7)]})
    metas = {**META, "v1-a": _versioned(1), "v2-a": _versioned(2), "v2-b": _versioned(2)}
    search = VectorStoreSearch(query, StubStore(metas))  # type: ignore[arg-type]

    page = search.search("c", ["one", "two"], max_num_results=3)

    assert [h.chunk_id for h in page.hits] == ["v2-a", "v2-b", "a"]  # the best 3 once v1-a is dropped


def test_a_chunk_deleted_since_its_query_counts_as_an_older_version():
    """The old version's chunk was found by the first query and deleted (write-then-delete) before the page was
    built: without its metadata it still does not join the new version's chunks."""
    query = SharedDocumentQuery({"one": [("v1-gone", 0.9)], "two": [("v2-a", 0.8)]})
    search = VectorStoreSearch(query, StubStore({"v2-a": _versioned(2)}))  # type: ignore[arg-type]

    page = search.search("c", ["one", "two"])

    assert [h.chunk_id for h in page.hits] == ["v2-a"]
