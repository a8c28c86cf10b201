"""Finding: `/query/stream` put `str(error)` of a failed pipeline (SQL with the filter's values) into its `error`
event. A streamed failure now carries exactly the code and message `/query` answers, never internals."""

import json

import pytest
from fastapi.testclient import TestClient

from app.settings import Settings

pytestmark = pytest.mark.integration

SECRET = "s3cr3t-filter-value"


@pytest.fixture(
    scope="module",
    params=[pytest.param("default", id="lancedb"), pytest.param("pgvector", id="pgvector", marks=pytest.mark.postgres)],
)
def api_settings(request, tmp_path_factory, make_tiny_profile):
    """Both stores: each reports a filter it cannot apply in its own way (Haystack's FilterError, PostgreSQL)."""
    root = tmp_path_factory.mktemp(f"stream-{request.param}")
    pipelines = make_tiny_profile(root / "pipelines", profile=request.param)
    with pytest.MonkeyPatch.context() as patch:
        if request.param == "pgvector":
            patch.setenv("PG_CONN_STR", request.getfixturevalue("pg_dsn"))
        yield Settings(data_dir=root / "data", pipelines_dir=pipelines, rate_limit="off")


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
        raise ValueError(f"store error: cannot evaluate filter: SELECT * WHERE meta_n = '{SECRET}'")

    async def failing_async(*args, **kwargs):
        failing()

    pipeline = client.app.state.rag.pipelines.query.pipeline
    for name in ("embedding_retriever", "keyword_retriever"):  # where the store is called, on either store
        monkeypatch.setattr(pipeline.get_component(name), "run", failing)
        monkeypatch.setattr(pipeline.get_component(name), "run_async", failing_async)
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
