"""Citations pointed at the passage that holds their sentence (`CitationRepointer`), in the streamed tokens of
`POST /query/stream` and `/v1/chat/completions` as in the final answer.

The LLM is `SlowChatGenerator` (no wait) streaming its reply a character at a time, so every `[n]` arrives split
over several chunks; its reply cites each sentence with the other passage's number.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.testing.api import app_with_documents, sse_events
from app.testing.profiles import scripted_llm

pytestmark = pytest.mark.integration

COLLECTION = "repointed"
QUESTION = "What colour is the lighthouse on Skerry Point?"  # the ferry passage second, in both retrievers
LIGHTHOUSE = "The lighthouse on Skerry Point is painted red and white."
FERRY = "The ferry to Skerry Point leaves every hour from pier four."


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> Iterator[TestClient]:
    documents = {"lighthouse.txt": LIGHTHOUSE, "ferry.txt": FERRY}
    with app_with_documents(
        tmp_path_factory.mktemp("repointed"),
        edit=scripted_llm("set by the test", tokens=500),
        documents=documents,
        collection=COLLECTION,
    ) as test_client:
        yield test_client


@pytest.fixture
def numbers(client, monkeypatch) -> dict[str, int]:
    """The passage numbers of the two files; the model's reply cites each sentence with the other one's."""
    search = client.post("/query", json={"question": QUESTION, "collection": COLLECTION, "generate": False}).json()
    found = {source["filename"]: source["n"] for source in search["sources"]}
    assert found == {"lighthouse.txt": 1, "ferry.txt": 2}, search  # the same order in every request
    llm = client.app.state.rag.pipelines.query.pipeline.get_component("llm")
    reply = f"{LIGHTHOUSE[:-1]} [{found['ferry.txt']}]. {FERRY[:-1]} [{found['lighthouse.txt']}]."
    monkeypatch.setattr(llm, "reply", reply)
    return found


def _expected(numbers: dict[str, int]) -> str:
    return f"{LIGHTHOUSE[:-1]} [{numbers['lighthouse.txt']}]. {FERRY[:-1]} [{numbers['ferry.txt']}]."


def test_the_answer_cites_the_passages_that_hold_its_sentences(client, numbers):
    body = client.post("/query", json={"question": QUESTION, "collection": COLLECTION}).json()
    assert body["answer"] == _expected(numbers)
    assert [(c["sources"], c["supported"]) for c in body["claims"]] == [
        ([numbers["lighthouse.txt"]], True),
        ([numbers["ferry.txt"]], True),
    ]


def test_streamed_tokens_carry_the_same_citations_as_they_arrive(client, numbers):
    with client.stream("POST", "/query/stream", json={"question": QUESTION, "collection": COLLECTION}) as response:
        assert response.status_code == 200
        text = "".join(response.iter_text())
    parsed = sse_events(text)
    tokens = [data["text"] for kind, data in parsed if kind == "token"]
    done = parsed[-1][1]
    assert parsed[-1][0] == "done"
    assert "".join(tokens) == done["answer"] == _expected(numbers)
    assert f"[{numbers['lighthouse.txt']}]" in tokens  # held back while incomplete, then sent whole, rewritten
    assert len(tokens) > 50  # still streamed live, not held to the end
    assert sorted(done["cited"]) == [1, 2]


def test_openai_stream_carries_the_same_citations(client, numbers):
    body = {"messages": [{"role": "user", "content": QUESTION}], "collection": COLLECTION, "stream": True}
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        text = "".join(response.iter_text())
    chunks = [json.loads(line.removeprefix("data: ")) for line in text.split("\n\n") if line.startswith("data: {")]
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert content == _expected(numbers)
