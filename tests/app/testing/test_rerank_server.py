"""The local reranking server answers each protocol in its documented shape, and refuses malformed requests."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from app.testing.rerank_server import FakeReranker, overlap_score

pytestmark = pytest.mark.integration

TEXTS = ["apt installs packages", "sqlite wal mode", "sqlite vacuum"]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeReranker]:
    with FakeReranker() as fake:
        yield fake


def _post(server: FakeReranker, path: str, body: dict) -> httpx.Response:
    return httpx.post(server.url + path, json=body, timeout=5, trust_env=False)


def test_overlap_score_is_the_share_of_query_words_found() -> None:
    assert overlap_score("SQLite WAL", "the sqlite wal mode") == 1.0
    assert overlap_score("sqlite wal", "sqlite vacuum") == 0.5
    assert overlap_score("", "anything") == 0.0


def test_tei_answers_a_sorted_list_with_text_on_request(server: FakeReranker) -> None:
    reply = _post(server, "/rerank", {"query": "sqlite wal", "texts": TEXTS, "return_text": True}).json()

    assert reply == [
        {"index": 1, "score": 1.0, "text": "sqlite wal mode"},
        {"index": 2, "score": 0.5, "text": "sqlite vacuum"},
        {"index": 0, "score": 0.0, "text": "apt installs packages"},
    ]


def test_jina_answers_model_usage_and_documents_cut_to_top_n(server: FakeReranker) -> None:
    body = {"model": "jina-x", "query": "sqlite wal", "documents": TEXTS, "top_n": 2, "return_documents": True}

    reply = _post(server, "/v1/rerank", body).json()

    assert reply["model"] == "jina-x" and reply["usage"]["total_tokens"] > 0
    assert reply["results"] == [
        {"index": 1, "relevance_score": 1.0, "document": {"text": "sqlite wal mode"}},
        {"index": 2, "relevance_score": 0.5, "document": {"text": "sqlite vacuum"}},
    ]


def test_cohere_v2_answers_results_without_documents(server: FakeReranker) -> None:
    reply = _post(server, "/v2/rerank", {"model": "m", "query": "sqlite wal", "documents": TEXTS}).json()

    assert [r["index"] for r in reply["results"]] == [1, 2, 0]
    assert all(set(r) == {"index", "relevance_score"} for r in reply["results"])
    assert reply["meta"]["api_version"] == {"version": "2"} and reply["id"]


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/rerank", {"query": "q"}, 422),
        ("/v2/rerank", {"query": "q", "documents": [1, 2]}, 422),
        ("/v1/rerank", {"documents": ["a"]}, 422),
        ("/v3/rerank", {"query": "q", "documents": ["a"]}, 404),
    ],
)
def test_malformed_requests_are_refused(server: FakeReranker, path: str, body: dict, status: int) -> None:
    assert _post(server, path, body).status_code == status
