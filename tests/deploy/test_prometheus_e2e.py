"""A real Prometheus (Debian's `prometheus`, scripts/apt-packages-deploy.txt) scrapes a real `rag serve`.

Both run on free 127.0.0.1 ports; Prometheus scrapes every second. After two uploads and two queries, its HTTP API
must report them (bounded wait), as the compose monitoring profile would see them.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator

import httpx
import pytest

from app.testing.servers import prometheus_server, serve_rag

pytestmark = [pytest.mark.integration, pytest.mark.slow]
DEADLINE_S = 60
DOCUMENTS = {
    "harbour.txt": "The harbour master of Port Ellen opens the lock gates two hours before high tide.\n",
    "bakery.txt": "The bakery on Frederick Crescent sells oatcakes on Tuesdays and Fridays only.\n",
}


@pytest.fixture(scope="module")
def rag_server(tmp_path_factory, make_tiny_profile) -> Iterator[str]:
    root = tmp_path_factory.mktemp("prom-e2e-rag")
    with serve_rag(make_tiny_profile(root / "pipelines"), root / "data") as base:
        yield base


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory, rag_server) -> Iterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed: bash scripts/apt-install.sh scripts/apt-packages-deploy.txt")
    root = tmp_path_factory.mktemp("prom-e2e-prometheus")
    target = rag_server.removeprefix("http://")
    config = root / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n"
        "  - job_name: ragstack-api\n    scrape_interval: 1s\n    scrape_timeout: 1s\n    metrics_path: /metrics\n"
        f"    static_configs:\n      - targets: ['{target}']\n"
    )
    with prometheus_server(binary, config, root) as base:
        yield base


def _scalar(prometheus: str, query: str) -> float:
    """Value of an instant query that yields at most one series (0 when it yields none yet)."""
    response = httpx.get(f"{prometheus}/api/v1/query", params={"query": query}, timeout=5)
    response.raise_for_status()
    body = response.json()
    assert body["status"] == "success", body
    result = body["data"]["result"]
    return float(result[0]["value"][1]) if result else 0.0


def test_prometheus_scrapes_uploads_and_queries(rag_server, prometheus):
    with httpx.Client(base_url=rag_server, timeout=120) as http:
        for name, text in DOCUMENTS.items():
            upload = http.post(
                "/documents/upload", files=[("files", (name, text.encode(), "text/plain"))], data={"collection": "prom"}
            )
            assert upload.status_code == 200, upload.text
        for question in ("When are the lock gates opened?", "When are oatcakes sold?"):
            answer = http.post("/query", json={"question": question, "collection": "prom"})
            assert answer.status_code == 200, answer.text

    queries = {
        "sum(rag_uploads_total)": 2,
        'sum(rag_query_duration_seconds_count{stage="total"})': 2,
        'up{job="ragstack-api"}': 1,
    }
    seen: dict[str, float] = {}
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        seen = {query: _scalar(prometheus, query) for query in queries}
        if all(seen[query] >= minimum for query, minimum in queries.items()):
            break
        time.sleep(1)
    else:
        pytest.fail(f"Prometheus did not see 2 uploads and 2 queries in {DEADLINE_S} s: {seen}")
