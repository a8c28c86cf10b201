"""Upstream failures through the real app: the openai profile points at a local fault-injecting server.

The OpenAI client retries (max_retries 2, i.e. 3 attempts) with backoff; what still fails becomes 503 (429,
connection refused), 502 (5xx, dropped connection) or 504 (timeout), never a hang or a 500.
"""

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from app.testing.profiles import edit_yaml

pytestmark = pytest.mark.integration

QUESTION = {"question": "What is Python?", "collection": "f", "top_k": 2}


@pytest.fixture(scope="module")
def client(fake_openai, tmp_path_factory, make_tiny_profile, html_file):
    root = tmp_path_factory.mktemp("faults")
    pipelines = make_tiny_profile(root / "pipelines", profile="openai")
    edit_yaml(
        pipelines / "query.yml",
        lambda query: query["components"]["llm"]["init_parameters"].update(
            api_base_url=fake_openai.base_url, timeout=1.0, max_retries=2
        ),
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPENAI_API_KEY", "sk-fault-test")
        with TestClient(
            create_app(Settings(data_dir=root / "data", pipelines_dir=pipelines, dev_mode=True))
        ) as test_client:
            files = [("files", (html_file.name, html_file.read_bytes()))]
            assert test_client.post("/documents/upload", files=files, data={"collection": "f"}).status_code == 200
            yield test_client


@pytest.mark.parametrize(
    ("mode", "status", "code"),
    [
        ("429", 503, "upstream_unavailable"),
        ("503", 503, "upstream_unavailable"),
        ("500", 502, "upstream_bad_gateway"),
        ("drop", 502, "upstream_bad_gateway"),
        ("hang", 504, "upstream_timeout"),
    ],
)
def test_failure_is_retried_then_mapped(client, fake_openai, mode, status, code):
    fake_openai.reset()
    fake_openai.mode = mode
    response = client.post("/query", json=QUESTION)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert "LLM server" in error["message"]
    assert len(fake_openai.requests) == 3  # first attempt + max_retries 2


def test_recovers_when_the_upstream_does(client, fake_openai):
    fake_openai.reset()
    body = client.post("/query", json=QUESTION).json()
    assert body["answer"].startswith("Recovered")
    assert len(fake_openai.requests) == 1


def test_stream_failure_is_an_error_event_with_the_upstream_code(client, fake_openai):
    fake_openai.reset()
    fake_openai.mode = "500"
    with client.stream("POST", "/query/stream", json=QUESTION) as response:
        text = "".join(response.iter_text())
    blocks = [b for b in text.split("\n\n") if b.strip()]
    assert blocks[0].startswith("event: sources")
    assert blocks[-1].startswith("event: error")
    assert "upstream_bad_gateway" in blocks[-1]


def test_unreachable_upstream_is_503(client, fake_openai):
    llm = client.app.state.rag.pipelines.query.pipeline.get_component("llm")
    original = llm.client.base_url
    llm.client.base_url = "http://127.0.0.1:9/v1/"  # nothing listens on the discard port
    try:
        response = client.post("/query", json=QUESTION)
    finally:
        llm.client.base_url = original
    assert response.status_code == 503, response.text
    assert "unreachable" in response.json()["error"]["message"]
