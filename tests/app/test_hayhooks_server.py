"""`scripts/hayhooks.sh` serves query.yml with Hayhooks as shipped: `POST /query/run` answers from indexed text,
the code-deploy routes do not exist, and CORS echoes no foreign origin.

The server is the documented command run as a real subprocess on a free 127.0.0.1 port, against a tmp data dir
indexed in-process through `IngestService` and a tmp copy of the pipelines using the tiny smollm2 model.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.composition import build_services
from app.pipeline_loader import load_pipelines
from app.settings import PROJECT_ROOT, Settings
from app.testing.profiles import copy_profile
from app.testing.servers import free_port, http_ok, server_process

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SCRIPT = PROJECT_ROOT / "scripts" / "hayhooks.sh"
COLLECTION = "faq"
READY_TIMEOUT_S = 45.0
EVIL_ORIGIN = "http://evil.example"


def _tiny_pipelines(target: Path) -> Path:
    copy_profile(target)
    query = target / "query.yml"
    text = query.read_text(encoding="utf-8")
    assert "model: qwen2.5-coder-1.5b-instruct-q4_k_m" in text
    query.write_text(text.replace("qwen2.5-coder-1.5b-instruct-q4_k_m", "smollm2-135m-instruct-q4_1"), "utf-8")
    return target


def _serves_query(response: httpx.Response) -> bool:
    return "query" in response.json().get("pipelines", [])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, html_file: Path) -> Iterator[str]:
    root = tmp_path_factory.mktemp("hayhooks")
    data_dir = root / "data"
    pipelines_dir = _tiny_pipelines(root / "pipelines")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAG_DATA_DIR", str(data_dir))
        pipelines = load_pipelines(pipelines_dir)
        pipelines.indexing.pipeline.warm_up()
        services = build_services(Settings(data_dir=data_dir, pipelines_dir=pipelines_dir), pipelines)
        result = services.ingest.ingest_path(html_file, collection=COLLECTION)
        assert result.status == "indexed" and result.chunks > 0, result
        del pipelines, services

    port = free_port()
    env = {
        **os.environ,
        "RAG_DATA_DIR": str(data_dir),
        "RAG_PIPELINES_DIR": str(pipelines_dir),
        "HAYHOOKS_PORT": str(port),
        "XDG_CACHE_HOME": str(root / "cache"),
        "HAYSTACK_TELEMETRY_ENABLED": "False",
    }
    for inherited in ("HAYHOOKS_CORS_ALLOW_ORIGINS", "HAYHOOKS_TRACING_ENABLED", "RAG_HAYHOOKS_PIPELINES"):
        env.pop(inherited, None)
    with server_process(
        ["bash", str(SCRIPT)],
        log=root / "hayhooks.log",
        ready=lambda port: http_ok(f"http://127.0.0.1:{port}/status", accept=_serves_query),
        env=env,
        cwd=root,
        port=port,
        seconds=READY_TIMEOUT_S,
        new_session=True,
        stop_timeout=15,
        what="hayhooks",
    ) as hayhooks:
        yield hayhooks.url


@pytest.fixture
def client(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, trust_env=False, timeout=60.0) as http:
        yield http


def test_query_run_answers_with_passages_from_the_indexed_file(client: httpx.Client) -> None:
    body = {
        "question": "Who holds the copyright on Python?",
        "filters": {"field": "meta.collection", "operator": "==", "value": COLLECTION},
        "top_k": 3,
        "candidates": 10,
        "generate": True,
        "history": [],  # no conversation: the condenser passes the question through
    }
    response = client.post("/query/run", json=body)
    assert response.status_code == 200, response.text
    result = response.json()["result"]
    passages = result["gate"]["passages"]
    assert result["gate"]["relevant"] is True
    assert 0 < len(passages) <= 3
    assert {p["meta"]["file_name"] for p in passages} == {"general.html"}
    assert {p["meta"]["collection"] for p in passages} == {COLLECTION}
    assert any("Python Software Foundation" in p["content"] for p in passages)
    answer = result["answer_builder"]["answers"][0]
    assert answer["data"].strip()
    assert answer["query"] == body["question"]


def test_query_run_needs_every_declared_input_and_null_means_the_yaml_default(client: httpx.Client) -> None:
    missing = client.post("/query/run", json={"question": "What is Python?"})
    assert missing.status_code == 422
    declared = {"filters", "top_k", "candidates", "generate", "history"}
    assert {error["loc"][-1] for error in missing.json()["detail"]} == declared

    search_only = {
        "question": "What is Python?",
        "filters": None,
        "top_k": None,
        "candidates": None,
        "generate": False,
        "history": None,
    }
    response = client.post("/query/run", json=search_only)
    assert response.status_code == 200, response.text
    result = response.json()["result"]
    assert "answer_builder" not in result
    assert result["gate"]["passages"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/deploy_files", {"name": "x", "files": {"pipeline_wrapper.py": "import os"}}),
        ("POST", "/deploy-yaml", {"name": "x", "source_code": "components: {}"}),
        ("POST", "/deploy", {"name": "x", "source_code": "components: {}"}),
        ("POST", "/undeploy/query", None),
        ("DELETE", "/undeploy/query", None),
        ("POST", "/indexing/run", {"sources": ["/etc/passwd"], "meta": None}),
    ],
)
def test_deploy_routes_and_indexing_are_not_served(
    client: httpx.Client, method: str, path: str, body: dict[str, object] | None
) -> None:
    response = client.request(method, path, json=body)
    assert response.status_code in (404, 405), (path, response.status_code, response.text[:300])


def test_openapi_lists_no_deploy_route_and_query_survives(client: httpx.Client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "/query/run" in paths
    assert not [path for path in paths if "deploy" in path or path.startswith("/indexing")]
    assert client.get("/status").json()["pipelines"] == ["query"]


def test_cors_does_not_echo_foreign_origins(client: httpx.Client) -> None:
    preflight = client.options(
        "/query/run",
        headers={
            "Origin": EVIL_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert "access-control-allow-origin" not in preflight.headers
    assert preflight.status_code >= 400
    body = {
        "question": "What is Python?",
        "filters": None,
        "top_k": 1,
        "candidates": 5,
        "generate": False,
        "history": None,
    }
    simple = client.post("/query/run", json=body, headers={"Origin": EVIL_ORIGIN})
    assert "access-control-allow-origin" not in simple.headers
