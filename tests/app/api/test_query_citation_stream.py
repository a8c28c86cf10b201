"""Citations pointed at the passage that holds their sentence (`CitationRepointer`), in the streamed tokens of
`POST /query/stream` and `/v1/chat/completions` as in the final answer.

The LLM is `SlowChatGenerator` (no wait) streaming its reply a character at a time, so every `[n]` arrives split
over several chunks; its reply cites each sentence with the other passage's number.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from app.testing.api import admin_headers
from app.testing.profiles import edit_yaml

pytestmark = pytest.mark.integration

COLLECTION = "repointed"
QUESTION = "What colour is the lighthouse on Skerry Point?"  # the ferry passage second, in both retrievers
LIGHTHOUSE = "The lighthouse on Skerry Point is painted red and white."
FERRY = "The ferry to Skerry Point leaves every hour from pier four."


def _fake_llm(query: dict[str, Any]) -> None:
    components = query["components"]
    components["llm"] = {
        "type": "app.testing.slow_chat_generator.SlowChatGenerator",
        "init_parameters": {"seconds": 0, "tokens": 500, "reply": "set by the test"},
    }
    components["gate"]["init_parameters"]["min_score"] = -1.0


@pytest.fixture(scope="module")
def client(tmp_path_factory, make_tiny_profile) -> Iterator[TestClient]:
    root = tmp_path_factory.mktemp("repointed")
    pipelines = make_tiny_profile(root / "pipelines")
    edit_yaml(pipelines / "query.yml", _fake_llm)
    settings = Settings(data_dir=root / "data", pipelines_dir=pipelines, rate_limit="off")
    with TestClient(create_app(settings), headers=admin_headers(settings.data_dir)) as test_client:
        for name, text in (("lighthouse.txt", LIGHTHOUSE), ("ferry.txt", FERRY)):
            files = {"files": (name, text.encode(), "text/plain")}
            uploaded = test_client.post("/documents/upload", files=files, data={"collection": COLLECTION})
            assert uploaded.status_code == 200, uploaded.text
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
    events = [block.split("\n", 1) for block in text.split("\n\n") if block.strip()]
    parsed = [(head.removeprefix("event: "), json.loads(data.removeprefix("data: "))) for head, data in events]
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
