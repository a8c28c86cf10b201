"""HttpReranker through its real HTTP client against a local reranking server (`app.testing.rerank_server`).

The server speaks TEI `/rerank`, Jina `/v1/rerank` and Cohere `/v2/rerank`, scores by word overlap with the query
(deterministic), and injects faults (HTTP statuses, hangs, dropped connections) on request.
"""

from __future__ import annotations

import copy
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from haystack import Document
from haystack.core.serialization import component_from_dict, component_to_dict
from haystack.utils import Secret

from app.errors import UpstreamBadGatewayError, UpstreamTimeoutError, UpstreamUnavailableError
from app.testing.fakes import Reply
from app.testing.rerank_server import FakeReranker
from app.upstream import upstream_error
from components.rankers.http_reranker import HttpReranker, RerankerError

FAST = {"timeout": 1.0, "retry_initial_delay": 0.01, "retry_max_delay": 0.05}
QUERY = "how does sqlite write ahead logging work"
# word overlap with QUERY: 0/7, 2/7, 7/7, 3/7 -> expected order c, d, b, a
DOCUMENTS = [
    Document(id="a", content="The Debian installer partitions.", score=0.9, meta={"file_name": "a.pdf", "page": 1}),
    Document(id="b", content="How SQLite stores pages.", score=0.8, meta={"file_name": "b.pdf", "page": 2}),
    Document(
        id="c",
        content="How the write ahead logging of SQLite does work.",
        score=0.7,
        meta={"file_name": "c.pdf", "page": 3},
    ),
    Document(id="d", content="Ahead of time: logging in sqlite.", score=0.6, meta={"file_name": "d.pdf", "page": 4}),
]
EXPECTED = ["c", "d", "b", "a"]
FLAVOURS: list[dict[str, Any]] = [
    {"api": "tei"},
    {"api": "cohere", "model": "rerank-test"},
    {"api": "jina", "model": "jina-reranker-test"},
]
PATHS = {"tei": "/rerank", "cohere": "/v2/rerank", "jina": "/v1/rerank"}


@pytest.fixture(scope="module")
def server() -> Iterator[FakeReranker]:
    with FakeReranker() as fake:
        yield fake


@pytest.fixture
def fake(server: FakeReranker) -> FakeReranker:
    server.reset()
    return server


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def _ranker(url: str, **kwargs: Any) -> HttpReranker:
    return HttpReranker(url=url, **{**FAST, **kwargs})


# --- init and serialization -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"api": "openai"}, "api must be one of"),
        ({"url": "localhost:8080"}, "url must be"),
        ({"path": "rerank"}, "path must start"),
        ({"api": "cohere"}, "model is required"),
        ({"top_k": 0}, "top_k"),
        ({"timeout": 0}, "timeout"),
        ({"retries": -1}, "retries"),
        ({"retry_initial_delay": 0}, "retry_initial_delay"),
    ],
)
def test_bad_init_arguments_are_refused(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        HttpReranker(**kwargs)


def test_round_trip_keeps_every_setting_and_never_the_key_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_RERANK_KEY", "s3cret")
    ranker = HttpReranker(
        api="jina",
        url="${RAG_RERANK_URL:-http://127.0.0.1:9}",
        path="/v1/rerank",
        model="m",
        api_key=Secret.from_env_var("MY_RERANK_KEY", strict=False),
        top_k=3,
        meta_fields_to_embed=["title"],
        timeout=2.5,
        retries=1,
    )
    data = component_to_dict(ranker, "ranker")
    assert "s3cret" not in repr(data)
    assert data["init_parameters"]["api_key"] == {"type": "env_var", "env_vars": ["MY_RERANK_KEY"], "strict": False}

    restored = component_from_dict(HttpReranker, copy.deepcopy(data), "ranker")

    assert component_to_dict(restored, "ranker") == data
    assert restored.api_key is not None and restored.api_key.resolve_value() == "s3cret"


def test_no_documents_sends_no_request() -> None:
    ranker = _ranker(_closed_port_url())
    assert ranker.run(query="q", documents=[]) == {"documents": []}


def test_the_url_comes_from_the_environment_at_warm_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAG_RERANK_URL", raising=False)
    default = HttpReranker()
    default.warm_up()
    monkeypatch.setenv("RAG_RERANK_URL", "http://127.0.0.1:9/tei/")
    configured = HttpReranker()
    configured.warm_up()

    assert default._endpoint == "http://localhost:8080/rerank"
    assert configured._endpoint == "http://127.0.0.1:9/tei/rerank"
    with pytest.raises(ValueError, match="MISSING_RERANK_URL is not set"):
        HttpReranker(url="${MISSING_RERANK_URL}").warm_up()


# --- each protocol against the local server ------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("flavour", FLAVOURS, ids=lambda f: f["api"])
def test_each_api_reorders_by_the_servers_scores_and_keeps_meta(fake: FakeReranker, flavour: dict[str, Any]) -> None:
    ranker = _ranker(fake.url, top_k=3, **flavour)

    ranked = ranker.run(query=QUERY, documents=DOCUMENTS)["documents"]

    assert [d.id for d in ranked] == EXPECTED[:3]
    assert [d.score for d in ranked] == pytest.approx([7 / 7, 3 / 7, 2 / 7])
    assert [(d.meta["file_name"], d.meta["page"]) for d in ranked] == [("c.pdf", 3), ("d.pdf", 4), ("b.pdf", 2)]
    assert [d.content for d in ranked] == [DOCUMENTS[2].content, DOCUMENTS[3].content, DOCUMENTS[1].content]
    assert DOCUMENTS[2].score == 0.7, "the input documents are not modified"
    assert fake.paths == [PATHS[flavour["api"]]]
    body = fake.requests[0]
    if flavour["api"] == "tei":
        assert body["texts"] == [d.content for d in DOCUMENTS] and body["query"] == QUERY
    else:
        assert body["documents"] == [d.content for d in DOCUMENTS]
        assert body["model"] == flavour["model"] and body["top_n"] == 3


@pytest.mark.integration
def test_run_top_k_overrides_and_a_path_prefix_is_kept(fake: FakeReranker) -> None:
    ranker = _ranker(fake.url + "/", api="cohere", model="m", path="/v1/rerank", top_k=3)

    ranked = ranker.run(query=QUERY, documents=DOCUMENTS, top_k=1)["documents"]

    assert [d.id for d in ranked] == ["c"]
    assert fake.paths == ["/v1/rerank"]


@pytest.mark.integration
def test_the_api_key_is_sent_as_a_bearer_token_only_when_set(
    fake: FakeReranker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RAG_RERANK_API_KEY", raising=False)
    _ranker(fake.url).run(query=QUERY, documents=DOCUMENTS)
    monkeypatch.setenv("RAG_RERANK_API_KEY", "k-123")
    _ranker(fake.url).run(query=QUERY, documents=DOCUMENTS)

    assert "authorization" not in fake.headers[0]
    assert fake.headers[1]["authorization"] == "Bearer k-123"


@pytest.mark.integration
def test_meta_fields_are_prepended_to_the_scored_text(fake: FakeReranker) -> None:
    documents = [Document(content="nothing relevant", meta={"title": "SQLite WAL"}), Document(content="sqlite")]
    ranker = _ranker(fake.url, meta_fields_to_embed=["title"])

    ranked = ranker.run(query="sqlite wal", documents=documents)["documents"]

    assert fake.requests[0]["texts"][0] == "SQLite WAL\nnothing relevant"
    assert ranked[0].content == "nothing relevant" and ranked[0].meta == {"title": "SQLite WAL"}


# --- failures: retried when transient, always a RerankerError the service maps to 502/503/504 ---------------------


@pytest.mark.integration
def test_a_transient_failure_is_retried(fake: FakeReranker) -> None:
    fake.fail_next("503")
    fake.fail_next("drop")

    ranked = _ranker(fake.url, retries=2).run(query=QUERY, documents=DOCUMENTS)["documents"]

    assert [d.id for d in ranked] == EXPECTED
    assert len(fake.requests) == 3


@pytest.mark.integration
@pytest.mark.parametrize(
    ("fault", "status", "upstream", "requests"),
    [
        ("503", 503, UpstreamUnavailableError, 2),
        ("500", 500, UpstreamBadGatewayError, 2),
        ("429", 429, UpstreamUnavailableError, 2),
        ("400", 400, UpstreamBadGatewayError, 1),  # a 4xx is not retried: the request itself is refused
        ("404", 404, UpstreamBadGatewayError, 1),
        ("401", 401, UpstreamBadGatewayError, 1),
    ],
)
def test_an_http_error_becomes_a_named_upstream_error(
    fake: FakeReranker, fault: str, status: int, upstream: type[Exception], requests: int
) -> None:
    fake.mode = fault
    with pytest.raises(RerankerError) as raised:
        _ranker(fake.url, retries=1).run(query=QUERY, documents=DOCUMENTS)

    assert raised.value.status_code == status
    assert f"HTTP {status}" in str(raised.value) and "injected" in str(raised.value)
    mapped = upstream_error(raised.value)
    assert isinstance(mapped, upstream) and "reranker" in str(mapped)
    assert fake.url not in str(mapped) and "injected" not in str(mapped), "the client sees no internal URL or reply"
    assert len(fake.requests) == requests


@pytest.mark.integration
def test_a_hung_server_times_out(fake: FakeReranker) -> None:
    fake.mode = "hang"
    with pytest.raises(RerankerError) as raised:
        _ranker(fake.url, timeout=0.2, retries=1).run(query=QUERY, documents=DOCUMENTS)

    assert isinstance(upstream_error(raised.value), UpstreamTimeoutError)
    assert len(fake.requests) == 2


def test_a_server_that_is_down_is_unavailable() -> None:
    with pytest.raises(RerankerError) as raised:
        _ranker(_closed_port_url(), retries=1).run(query=QUERY, documents=DOCUMENTS)

    mapped = upstream_error(raised.value)
    assert isinstance(mapped, UpstreamUnavailableError) and "reranker unreachable" in str(mapped)


@pytest.mark.integration
@pytest.mark.parametrize(
    ("api", "reply", "match"),
    [
        ("tei", {"results": [{"index": 0, "score": 1.0}]}, "unexpected shape"),
        ("cohere", [{"index": 0, "relevance_score": 1.0}], "unexpected shape"),
        ("jina", {"results": [{"index": 9, "relevance_score": 1.0}]}, "invalid result"),
        ("tei", [{"index": 0, "score": "high"}], "invalid result"),
    ],
    ids=["tei-gets-an-object", "cohere-gets-a-list", "index-out-of-range", "score-not-a-number"],
)
def test_an_unreadable_reply_is_a_bad_gateway(
    fake: FakeReranker, monkeypatch: pytest.MonkeyPatch, api: str, reply: Any, match: str
) -> None:
    monkeypatch.setattr(fake, "reply", lambda path, body: Reply.json(200, reply))
    with pytest.raises(RerankerError, match=match) as raised:
        _ranker(fake.url, api=api, model="m").run(query=QUERY, documents=DOCUMENTS)

    mapped = upstream_error(raised.value)
    assert isinstance(mapped, UpstreamBadGatewayError) and fake.url not in str(mapped)


@pytest.mark.integration
def test_a_request_the_server_cannot_read_is_a_bad_gateway_not_retried(fake: FakeReranker) -> None:
    """A Cohere-shaped request sent to TEI's path (a wrong `path` in YAML): the server answers 422."""
    with pytest.raises(RerankerError, match="HTTP 422") as raised:
        _ranker(fake.url, api="cohere", model="m", path="/rerank").run(query=QUERY, documents=DOCUMENTS)

    assert isinstance(upstream_error(raised.value), UpstreamBadGatewayError)
    assert len(fake.requests) == 1
