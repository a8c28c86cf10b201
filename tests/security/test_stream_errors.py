"""Finding: `/query/stream` put `str(error)` of a failed pipeline (SQL with the filter's values) into its `error`
event. A streamed failure now carries exactly the code and message `/query` answers, never internals."""

import json

import pytest
from fastapi.testclient import TestClient

from components.stores.lancedb_document_store import LanceDBDocumentStore

pytestmark = pytest.mark.integration

SECRET = "s3cr3t-filter-value"


@pytest.fixture(scope="module")
def mixed(client):
    """One key stored with several types: comparing it with a number fails inside the store."""
    for name, tags in (("n5.txt", '{"n": 5}'), ("nfive.txt", '{"n": "five"}')):
        response = client.post(
            "/documents/upload",
            files=[("files", (name, f"harbour notes {name}".encode()))],
            data={"collection": "mixed", "metadata": tags},
        )
        assert response.status_code == 200, response.text
    return "mixed"


def _stream_error(client, body: dict) -> tuple[dict, str]:
    with client.stream("POST", "/query/stream", json=body) as response:
        assert response.status_code == 200
        text = "".join(response.iter_text())
    last = [block for block in text.split("\n\n") if block.strip()][-1]
    assert last.startswith("event: error"), text
    return json.loads(last.split("\n", 1)[1].removeprefix("data: ")), text


def test_redteam_filter_type_mismatch_same_code_and_message_on_query_and_stream(client, mixed):
    body = {"question": "harbour", "collection": mixed, "filters": {"field": "meta.n", "operator": ">", "value": 3}}
    answered = client.post("/query", json=body)
    assert answered.status_code == 400, answered.text
    expected = answered.json()["error"]
    streamed, _ = _stream_error(client, body)
    assert streamed == {"code": expected["code"], "message": expected["message"]}
    assert streamed["code"] == "invalid_input"


def test_redteam_store_failure_streams_no_sql_with_filter_values(client, mixed, monkeypatch):
    def failing(*args, **kwargs):
        raise ValueError(f"LanceError(IO): cannot evaluate filter: SELECT * WHERE meta_n = '{SECRET}'")

    monkeypatch.setattr(LanceDBDocumentStore, "embedding_retrieval", failing)
    monkeypatch.setattr(LanceDBDocumentStore, "bm25_retrieval", failing)
    filters = {"field": "meta.n", "operator": "==", "value": SECRET}
    body = {"question": "harbour", "collection": mixed, "filters": filters}
    unraised = TestClient(client.app, raise_server_exceptions=False, headers=client.headers)  # the real 500 reply
    answered = unraised.post("/query", json=body)
    assert answered.status_code == 500, answered.text
    expected = answered.json()["error"]
    assert expected["code"] == "internal_error" and SECRET not in answered.text
    streamed, text = _stream_error(client, body)
    assert streamed == {"code": expected["code"], "message": expected["message"]}
    assert SECRET not in text and "SELECT" not in text


def test_openai_stream_error_carries_the_same_code(client, mixed):
    body = {
        "model": "ragstack",
        "stream": True,
        "messages": [{"role": "user", "content": "harbour"}],
        "collection": mixed,
        "filters": {"field": "meta.n", "operator": ">", "value": 3},
    }
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        text = "".join(response.iter_text())
    assert '"code": "invalid_input"' in text and "Traceback" not in text
