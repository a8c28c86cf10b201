"""Conversation history: a follow-up is condensed into a standalone question before retrieval, through
`QueryService.ask`, `stream_answer`, `POST /query` (`history`) and `/v1/chat/completions` (the earlier messages).

The condenser's generator and the answering `llm` are `SlowChatGenerator` (no wait) with fixed replies, so what is
under test is the plumbing: which question retrieval got, and that no model is called without history.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from haystack.dataclasses import ChatMessage
from openai import OpenAI

from app.errors import InvalidInputError
from app.services.query import MAX_HISTORY_CHARS, MAX_HISTORY_MESSAGES, stream_answer
from app.testing.api import app_with_documents
from app.testing.slow_chat_generator import SlowChatGenerator

pytestmark = pytest.mark.integration

COLLECTION = "conv"
LIGHTHOUSE = "The lighthouse on Skerry Point was built in 1874 by the harbour board and is painted red and white.\n"
FERRY = "The ferry to Inish Mor leaves at 9:40 every morning from pier 3 and returns at 17:15.\n"
FIRST = "What colour is the lighthouse on Skerry Point?"
FOLLOW_UP = "and when was it built?"
STANDALONE = "When was the lighthouse on Skerry Point built?"
REPLY = "It is painted red and white [1]."
HISTORY = [ChatMessage.from_user(FIRST), ChatMessage.from_assistant(REPLY)]
HISTORY_JSON = [{"role": "user", "content": FIRST}, {"role": "assistant", "content": REPLY}]


def _fakes(query: dict[str, Any]) -> None:
    components = query["components"]
    components["llm"] = {
        "type": "app.testing.slow_chat_generator.SlowChatGenerator",
        "init_parameters": {"seconds": 0, "tokens": 2, "reply": "It was built in 1874 [1]."},
    }
    components["condenser"]["init_parameters"]["chat_generator"] = {
        "type": "app.testing.slow_chat_generator.SlowChatGenerator",
        "init_parameters": {"seconds": 0, "tokens": 1, "reply": STANDALONE},
    }
    components["gate"]["init_parameters"]["min_score"] = -1.0
    components["answerability"]["init_parameters"]["threshold"] = -1.0


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> Iterator[TestClient]:
    documents = {"lighthouse.txt": LIGHTHOUSE, "ferry.txt": FERRY}
    with app_with_documents(
        tmp_path_factory.mktemp("conversation"), edit=_fakes, documents=documents, collection=COLLECTION
    ) as test_client:
        yield test_client


@pytest.fixture
def service(client):
    return client.app.state.rag.query


def test_ask_without_history_calls_no_condenser_and_keeps_the_question(service):
    calls = SlowChatGenerator.calls
    result = service.ask(FOLLOW_UP, collection=COLLECTION, generate=False)
    assert SlowChatGenerator.calls == calls  # neither the condenser's model nor the llm ran
    assert result.standalone_question == FOLLOW_UP
    empty = service.ask(FOLLOW_UP, collection=COLLECTION, generate=False, history=[])
    assert SlowChatGenerator.calls == calls
    assert [s.chunk_id for s in empty.sources] == [s.chunk_id for s in result.sources]


def test_ask_with_history_retrieves_for_the_standalone_question(service):
    calls = SlowChatGenerator.calls
    result = service.ask(FOLLOW_UP, collection=COLLECTION, top_k=1, generate=False, history=HISTORY)
    assert SlowChatGenerator.calls == calls + 1  # the condenser only: search-only queries are condensed too
    assert result.standalone_question == STANDALONE
    assert result.sources[0].filename == "lighthouse.txt"
    answered = service.ask(FOLLOW_UP, collection=COLLECTION, top_k=1, history=HISTORY)
    assert answered.answer.startswith("It was built in 1874")
    assert answered.standalone_question == STANDALONE


@pytest.mark.parametrize(
    ("history", "reason"),
    [
        ([ChatMessage.from_system("you are a pirate")], r"history\[0\] must be a user or assistant message"),
        ([ChatMessage.from_user("   ")], r"history\[0\] must have non-empty text"),
        ([ChatMessage.from_user("q")] * (MAX_HISTORY_MESSAGES + 1), f"at most {MAX_HISTORY_MESSAGES} messages"),
        ([ChatMessage.from_user("x" * (MAX_HISTORY_CHARS + 1))], f"longer than {MAX_HISTORY_CHARS} characters"),
        ("not a list", "must be a list"),
    ],
)
def test_ask_rejects_bad_history(service, history, reason):
    with pytest.raises(InvalidInputError, match=reason):
        service.ask(FOLLOW_UP, collection=COLLECTION, history=history)


def test_stream_answer_condenses_and_reports_the_standalone_question(client, service):
    async def events() -> list[Any]:
        stream = stream_answer(
            service,
            FOLLOW_UP,
            collection=COLLECTION,
            top_k=1,
            generation=client.app.state.rag.generation,
            key_id="test",
            history=HISTORY,
        )
        return [event async for event in stream]

    events = asyncio.run(events())
    assert events[0].kind == "sources" and events[0].data[0].filename == "lighthouse.txt"
    assert events[-1].kind == "done"
    assert events[-1].data["standalone_question"] == STANDALONE


def test_query_route_takes_history(client):
    body = {"question": FOLLOW_UP, "collection": COLLECTION, "top_k": 1, "history": HISTORY_JSON}
    response = client.post("/query", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["standalone_question"] == STANDALONE
    assert response.json()["sources"][0]["filename"] == "lighthouse.txt"
    with client.stream("POST", "/query/stream", json=body) as streamed:
        text = "".join(streamed.iter_text())
    done = json.loads(text.rsplit("event: done\ndata: ", 1)[1].split("\n", 1)[0])
    assert done["standalone_question"] == STANDALONE
    plain = client.post("/query", json={"question": FOLLOW_UP, "collection": COLLECTION, "generate": False})
    assert plain.json()["standalone_question"] == FOLLOW_UP
    too_many = {**body, "history": HISTORY_JSON * MAX_HISTORY_MESSAGES}
    rejected = client.post("/query", json=too_many)
    assert rejected.status_code == 400 and "at most" in rejected.json()["error"]["message"]
    system = client.post("/query", json={**body, "history": [{"role": "system", "content": "x"}]})
    assert system.status_code == 422


@pytest.fixture
def sdk(client):
    return OpenAI(
        base_url=f"{client.base_url}/v1",
        api_key=client.headers["Authorization"].removeprefix("Bearer "),
        http_client=client,
        max_retries=0,
    )


def test_chat_completions_answers_a_follow_up_with_the_earlier_messages(sdk):
    messages = [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": FIRST},
        {"role": "assistant", "content": "It is painted red and white [1]."},
        {"role": "user", "content": FOLLOW_UP},
    ]
    completion = sdk.chat.completions.create(
        model="rag", messages=messages, extra_body={"collection": COLLECTION, "top_k": 1}
    )
    assert completion.choices[0].message.content.startswith("It was built in 1874")
    assert completion.model_extra["standalone_question"] == STANDALONE
    assert completion.model_extra["sources"][0]["filename"] == "lighthouse.txt"
    stream = sdk.chat.completions.create(
        model="rag", messages=messages, stream=True, extra_body={"collection": COLLECTION, "top_k": 1}
    )
    last = list(stream)[-1]
    assert last.model_extra["standalone_question"] == STANDALONE


def test_chat_completions_with_one_message_is_not_condensed(sdk):
    calls = SlowChatGenerator.calls
    completion = sdk.chat.completions.create(
        model="rag", messages=[{"role": "user", "content": FOLLOW_UP}], extra_body={"collection": COLLECTION}
    )
    assert completion.model_extra["standalone_question"] == FOLLOW_UP
    assert SlowChatGenerator.calls == calls + 1  # the answer only


def test_chat_completions_keeps_the_recent_turns_of_a_long_conversation(sdk, client, monkeypatch):
    seen = []
    ask = client.app.state.rag.query.ask
    monkeypatch.setattr(client.app.state.rag.query, "ask", lambda *a, **kw: seen.append(kw["history"]) or ask(*a, **kw))
    old = [{"role": "user", "content": "q"}] * (MAX_HISTORY_MESSAGES + 20)
    recent = [{"role": "user", "content": FIRST}, {"role": "assistant", "content": REPLY}]
    long = [{"role": "user", "content": "x" * (MAX_HISTORY_CHARS - 10)}]
    for earlier in (old + recent, long + recent):
        messages = [*earlier, {"role": "user", "content": FOLLOW_UP}]
        completion = sdk.chat.completions.create(model="rag", messages=messages, extra_body={"collection": COLLECTION})
        assert completion.model_extra["standalone_question"] == STANDALONE
    assert len(seen[0]) == MAX_HISTORY_MESSAGES and seen[0][-1].text == REPLY
    assert [m.text for m in seen[1]] == [FIRST, REPLY]  # with the long message the history would pass the bound
