"""Checked claims in the answers of `POST /query`, `POST /query/stream` and `/v1/chat/completions`, and streamed
tokens that add up to the final answer.

The LLM is `SlowChatGenerator` (no wait) answering a fixed reply without `[n]` markers, so the CitationAttributor
infers the citation after generation; the gate lets every passage through.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.testing.api import app_with_documents, sse_events
from app.testing.profiles import scripted_llm

pytestmark = pytest.mark.integration

COLLECTION = "claims"
QUESTION = "What colour is the lighthouse on Skerry Point?"
TEXT = "The lighthouse on Skerry Point is painted red and white. It was built in 1874 by the harbour board.\n"
SUPPORTED = "The lighthouse on Skerry Point is painted red and white."
UNSUPPORTED = "Its keeper breeds alpacas on weekends."


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> Iterator[TestClient]:
    with app_with_documents(
        tmp_path_factory.mktemp("claims"),
        edit=scripted_llm(f"{SUPPORTED} {UNSUPPORTED}", tokens=6),
        documents={"skerry.txt": TEXT},
        collection=COLLECTION,
    ) as test_client:
        yield test_client


@pytest.fixture
def drop_mode(client, monkeypatch) -> None:
    checker = client.app.state.rag.pipelines.query.pipeline.get_component("claims")
    monkeypatch.setattr(checker, "unsupported", "drop")


def _stream(client: TestClient) -> tuple[list[str], dict[str, Any]]:
    with client.stream("POST", "/query/stream", json={"question": QUESTION, "collection": COLLECTION}) as response:
        assert response.status_code == 200
        text = "".join(response.iter_text())
    parsed = sse_events(text)
    assert parsed[-1][0] == "done", parsed
    return [data["text"] for kind, data in parsed if kind == "token"], parsed[-1][1]


def test_query_response_carries_the_checked_claims(client):
    body = client.post("/query", json={"question": QUESTION, "collection": COLLECTION}).json()
    assert body["answer"] == f"{SUPPORTED} {UNSUPPORTED} [1]"  # the inferred citation
    assert body["claims"][0] == {"text": SUPPORTED, "sources": [1], "supported": True, "score": 1.0}
    assert body["claims"][1]["text"] == f"{UNSUPPORTED} [1]"
    assert body["claims"][1]["supported"] is False and body["claims"][1]["score"] < 0.5


def test_search_only_and_refusals_have_no_claims(client):
    search = client.post("/query", json={"question": QUESTION, "collection": COLLECTION, "generate": False}).json()
    assert search["claims"] == []
    empty = client.post("/query", json={"question": QUESTION, "collection": "nothing_here"}).json()
    assert empty["refused"] is True and empty["claims"] == []


def test_streamed_tokens_add_up_to_the_answer_with_its_inferred_citation(client):
    tokens, done = _stream(client)
    assert len(tokens) > 1  # streamed live, token by token
    assert "".join(tokens) == done["answer"] == f"{SUPPORTED} {UNSUPPORTED} [1]"
    assert tokens[-1] == " [1]"


def test_done_event_carries_the_same_claims_as_the_json_answer(client):
    _, done = _stream(client)
    body = client.post("/query", json={"question": QUESTION, "collection": COLLECTION}).json()
    assert done["claims"] == body["claims"] and len(done["claims"]) == 2


def test_drop_mode_streams_only_the_checked_answer(client, drop_mode):
    tokens, done = _stream(client)
    assert done["answer"] == f"{SUPPORTED} [1]"
    assert tokens == [done["answer"]]  # held back until checked: the unsupported sentence never reached the client
    assert [c["text"] for c in done["claims"]] == [SUPPORTED]
    body = client.post("/query", json={"question": QUESTION, "collection": COLLECTION}).json()
    assert body["answer"] == done["answer"] and body["claims"] == done["claims"]


def test_openai_route_streams_the_whole_answer_and_its_claims(client):
    body = {"messages": [{"role": "user", "content": QUESTION}], "collection": COLLECTION, "stream": True}
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        text = "".join(response.iter_text())
    chunks = [json.loads(line.removeprefix("data: ")) for line in text.split("\n\n") if line.startswith("data: {")]
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert content == f"{SUPPORTED} {UNSUPPORTED} [1]"
    assert [c["supported"] for c in chunks[-1]["claims"]] == [True, False]
    plain = client.post("/v1/chat/completions", json={**body, "stream": False}).json()
    assert plain["choices"][0]["message"]["content"] == content and plain["claims"] == chunks[-1]["claims"]
