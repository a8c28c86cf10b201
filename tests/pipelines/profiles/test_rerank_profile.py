"""The rerank profile through the real app: its `ranker` (HttpReranker, TEI shape) calls a local reranking server
(`app.testing.rerank_server.FakeReranker`, word-overlap scores) between the hybrid joiner and the gate."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from app.testing.profiles import edit_yaml
from app.testing.rerank_server import FakeReranker, overlap_score

pytestmark = pytest.mark.integration

TEXTS = {
    "apt.txt": "Debian uses apt to install packages from the configured repositories.",
    "vacuum.txt": "The VACUUM command rebuilds the SQLite database file into a minimal amount of disk space.",
    "wal.txt": "SQLite write ahead logging lets readers work while a writer appends to the log.",
}
QUESTION = "how does write ahead logging work in sqlite"
SEARCH = {"question": QUESTION, "collection": "rr", "top_k": 2, "generate": False}


@pytest.fixture(scope="module")
def reranker() -> Iterator[FakeReranker]:
    with FakeReranker() as fake:
        yield fake


@pytest.fixture(scope="module")
def client(reranker: FakeReranker, tmp_path_factory: pytest.TempPathFactory, make_tiny_profile: Any) -> Iterator[Any]:
    root: Path = tmp_path_factory.mktemp("rerank-profile")
    pipelines = make_tiny_profile(root / "pipelines", profile="rerank")

    def fast_failures(query: dict[str, Any]) -> None:
        ranker = query["components"]["ranker"]
        assert ranker["type"] == "components.rankers.http_reranker.HttpReranker"
        ranker["init_parameters"].update(timeout=0.5, retries=1, retry_initial_delay=0.01, retry_max_delay=0.02)

    edit_yaml(pipelines / "query.yml", fast_failures)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAG_RERANK_URL", reranker.url)  # the shipped `url: "${RAG_RERANK_URL:-...}"`
        with TestClient(
            create_app(Settings(data_dir=root / "data", pipelines_dir=pipelines, dev_mode=True))
        ) as test_client:
            files = [("files", (name, text.encode())) for name, text in TEXTS.items()]
            upload = test_client.post("/documents/upload", files=files, data={"collection": "rr"})
            assert upload.status_code == 200, upload.text
            yield test_client


def test_sources_come_in_the_rerankers_order_with_its_scores(client: Any, reranker: FakeReranker) -> None:
    reranker.reset()

    response = client.post("/query", json=SEARCH)

    assert response.status_code == 200, response.text
    sources = response.json()["sources"]
    assert [s["filename"] for s in sources] == ["wal.txt", "vacuum.txt"]  # top_k 2 of the 3 fused candidates
    assert [s["score"] for s in sources] == pytest.approx(
        [overlap_score(QUESTION, TEXTS["wal.txt"]), overlap_score(QUESTION, TEXTS["vacuum.txt"])]
    )
    assert reranker.paths == ["/rerank"]
    sent = reranker.requests[0]
    assert sent["query"] == QUESTION
    assert sorted(sent["texts"]) == sorted(TEXTS.values()), "the joiner passes every fused candidate, not top_k"


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        ("503", 503, "upstream_unavailable"),
        ("500", 502, "upstream_bad_gateway"),
        ("404", 502, "upstream_bad_gateway"),
        ("drop", 502, "upstream_bad_gateway"),
        ("hang", 504, "upstream_timeout"),
    ],
)
def test_a_failing_reranker_is_a_named_upstream_error(
    client: Any, reranker: FakeReranker, fault: str, status: int, code: str
) -> None:
    reranker.reset()
    reranker.mode = fault

    response = client.post("/query", json=SEARCH)

    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and "reranker" in error["message"]
    reranker.reset()
    assert client.post("/query", json=SEARCH).status_code == 200, "recovers when the reranker does"
