"""The API served by `rag serve` (a real uvicorn process on 127.0.0.1), started and stopped by the test."""

import json
import time

import httpx
import pytest

from app.testing.servers import serve_rag

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def server(tiny_profile_dir, tmp_path_factory):
    with serve_rag(tiny_profile_dir, tmp_path_factory.mktemp("served-data")) as base:
        yield base


def test_upload_query_delete_round_trip(server, html_file):
    with httpx.Client(base_url=server, timeout=120) as http:
        files = [("files", (html_file.name, html_file.read_bytes(), "text/html"))]
        upload = http.post("/documents/upload", files=files, data={"collection": "rt"})
        assert upload.status_code == 200, upload.text
        document_id = upload.json()["files"][0]["document_id"]
        answer = http.post("/query", json={"question": "What is Python?", "collection": "rt"}).json()
        assert answer["answer"] and answer["sources"]
        assert all(s["document_id"] == document_id for s in answer["sources"])
        assert http.delete(f"/documents/{document_id}").status_code == 200
        after = http.post("/query", json={"question": "What is Python?", "collection": "rt", "generate": False})
        assert after.json()["sources"] == []


def test_tokens_arrive_incrementally(server, html_file):
    with httpx.Client(base_url=server, timeout=120) as http:
        files = [("files", (html_file.name, html_file.read_bytes(), "text/html"))]
        http.post("/documents/upload", files=files, data={"collection": "sse"})
        arrivals: list[tuple[str, float]] = []
        event = None
        body = {"question": "Why is Python called Python?", "collection": "sse"}
        with http.stream("POST", "/query/stream", json=body) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                if line.startswith("event: "):
                    event = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    arrivals.append((event or "", time.monotonic()))
                    json.loads(line.removeprefix("data: "))
    kinds = [kind for kind, _ in arrivals]
    assert kinds[0] == "sources" and kinds[-1] == "done"
    tokens = [t for kind, t in arrivals if kind == "token"]
    assert len(tokens) >= 5
    done_at = arrivals[-1][1]
    # the first token reached the client well before generation finished: tokens are not buffered to the end
    assert done_at - tokens[0] > 0.05
    assert tokens[-1] - tokens[0] > 0.05


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory, make_tiny_profile):
    root = tmp_path_factory.mktemp("two-workers")
    with serve_rag(make_tiny_profile(root / "pipelines"), root / "data", env={"RAG_WORKERS": "2"}) as base:
        yield base


def test_metrics_add_up_over_several_workers(two_workers):
    for _ in range(12):
        assert httpx.get(f"{two_workers}/health", timeout=10).status_code == 200
    text = httpx.get(f"{two_workers}/metrics", timeout=10).text
    line = next(
        row
        for row in text.splitlines()
        if row.startswith("rag_http_requests_total{") and 'route="/health"' in row and 'status="200"' in row
    )
    assert float(line.rsplit(" ", 1)[1]) == 12.0  # whichever worker answered, /metrics sums them all
