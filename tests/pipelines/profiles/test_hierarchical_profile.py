"""The hierarchical profile through the real app: leaves are searched, a parent block replaces its retrieved leaves."""

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def client(tmp_path_factory, make_tiny_profile, html_file):
    root = tmp_path_factory.mktemp("hierarchical-profile")
    pipelines = make_tiny_profile(root / "pipelines", profile="hierarchical")
    with TestClient(
        create_app(Settings(data_dir=root / "data", pipelines_dir=pipelines, dev_mode=True))
    ) as test_client:
        upload = test_client.post(
            "/documents/upload", files=[("files", (html_file.name, html_file.read_bytes()))], data={"collection": "h"}
        )
        assert upload.status_code == 200, upload.text
        yield test_client


def test_parents_replace_their_leaves_and_are_never_hits_themselves(client):
    body = client.post(
        "/query", json={"question": "What is Python?", "collection": "h", "top_k": 20, "generate": False}
    ).json()
    texts = [source["text"] for source in body["sources"]]
    assert texts and body["answer"] is None
    assert any(len(text) > 1000 for text in texts), "a 600-word parent block replaced its leaves"
    for i, text in enumerate(texts):  # never a parent together with one of its own leaves
        assert not any(j != i and other and other in text for j, other in enumerate(texts))
    few = client.post(
        "/query", json={"question": "What is Python?", "collection": "h", "top_k": 1, "generate": False}
    ).json()
    assert len(few["sources"]) == 1 and len(few["sources"][0]["text"]) <= 1000  # one leaf: nothing to merge
