"""RetryingOllamaChatGenerator against a local fault-injecting server that speaks Ollama's `/api/chat`.

The server (stdlib `http.server` on 127.0.0.1) answers with the recorded shapes in
`tests/contracts/recordings/ollama/` and can be told to fail the next requests: an HTTP status, a hang longer than
the client's `timeout`, a connection dropped before any response, or a stream cut after its first chunk.
"""

from __future__ import annotations

import asyncio
import copy
import json
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
from haystack import Pipeline
from haystack.dataclasses import ChatMessage, StreamingChunk
from ollama import ResponseError

from app.testing.fakes import FakeOllama
from components.generators.retrying_ollama_chat_generator import (
    RetryingOllamaChatGenerator,
    is_transient_ollama_error,
)

RECORDINGS = Path(__file__).resolve().parents[2] / "contracts" / "recordings" / "ollama"
CHAT = json.loads((RECORDINGS / "chat.json").read_text(encoding="utf-8"))
CHAT_STREAM = json.loads((RECORDINGS / "chat_stream.json").read_text(encoding="utf-8"))
STREAMED_TEXT = "".join(chunk["message"]["content"] for chunk in CHAT_STREAM)
FAST = {"timeout": 1, "retry_initial_delay": 0.01, "retry_max_delay": 0.05}


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def _llm(url: str, **kwargs: Any) -> RetryingOllamaChatGenerator:
    return RetryingOllamaChatGenerator(model="llama3.2:3b", url=url, **{**FAST, **kwargs})


QUESTION = [ChatMessage.from_user("How long is the warranty?")]


# --- init and serialization -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"retries": -1}, "retries"),
        ({"retries": 1.5}, "retries"),
        ({"retry_initial_delay": 0}, "retry_initial_delay"),
        ({"retry_max_delay": -1.0}, "retry_max_delay"),
        ({"retry_initial_delay": 2.0, "retry_max_delay": 1.0}, "must not exceed"),
    ],
)
def test_init_rejects_bad_retry_settings(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RetryingOllamaChatGenerator(**kwargs)


def test_defaults_and_parent_parameters() -> None:
    llm = RetryingOllamaChatGenerator(model="m", timeout=7, keep_alive="10m")

    assert (llm.retries, llm.retry_initial_delay, llm.retry_max_delay) == (2, 0.5, 8.0)
    assert (llm.model, llm.timeout, llm.keep_alive, llm.max_retries) == ("m", 7, "10m", 0)


def test_to_dict_from_dict_round_trip() -> None:
    llm = RetryingOllamaChatGenerator(
        model="llama3.2:3b",
        url="http://ollama:11434",
        generation_kwargs={"temperature": 0.0},
        timeout=300,
        keep_alive="10m",
        streaming_callback=print,
        retries=4,
        retry_initial_delay=0.25,
        retry_max_delay=3.0,
    )

    data = llm.to_dict()

    assert data["type"] == "components.generators.retrying_ollama_chat_generator.RetryingOllamaChatGenerator"
    params = data["init_parameters"]
    assert (params["retries"], params["retry_initial_delay"], params["retry_max_delay"]) == (4, 0.25, 3.0)
    assert params["timeout"] == 300 and params["keep_alive"] == "10m"
    assert params["streaming_callback"] == "builtins.print"
    restored = RetryingOllamaChatGenerator.from_dict(copy.deepcopy(data))
    assert isinstance(restored, RetryingOllamaChatGenerator)
    assert restored.streaming_callback is print
    assert (restored.retries, restored.retry_initial_delay, restored.retry_max_delay) == (4, 0.25, 3.0)
    assert restored.to_dict() == data


# --- the retry policy -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (ResponseError("busy", 429), True),
        (ResponseError("boom", 500), True),
        (ResponseError("unavailable", 503), True),
        (ResponseError("bad request", 400), False),
        (ResponseError("no such model", 404), False),
        (ResponseError("error line inside a stream"), False),  # status_code -1
        (ConnectionError("Failed to connect to Ollama"), True),
        (httpx.ConnectError("refused"), True),
        (httpx.ReadTimeout("timed out"), True),
        (httpx.RemoteProtocolError("Server disconnected"), True),
        (httpx.ReadError("reset"), True),
        (ValueError("bad message"), False),
    ],
)
def test_transient_errors(error: BaseException, transient: bool) -> None:
    assert is_transient_ollama_error(error) is transient


@pytest.mark.parametrize("status", ["500", "429", "503"])
def test_transient_status_then_success(ollama: FakeOllama, status: str) -> None:
    ollama.fail_next(status, times=2)

    result = _llm(ollama.url, retries=2).run(QUESTION)

    assert result["replies"][0].text == CHAT["message"]["content"]
    assert len(ollama.requests) == 3


def test_persistent_failure_raises_after_retries_plus_one_requests(ollama: FakeOllama) -> None:
    ollama.fail_next("503", times=10)

    with pytest.raises(ResponseError) as raised:
        _llm(ollama.url, retries=2).run(QUESTION)

    assert raised.value.status_code == 503
    assert len(ollama.requests) == 3


def test_client_error_is_not_retried(ollama: FakeOllama) -> None:
    ollama.fail_next("400", times=10)

    with pytest.raises(ResponseError) as raised:
        _llm(ollama.url, retries=3).run(QUESTION)

    assert raised.value.status_code == 400
    assert len(ollama.requests) == 1


def test_zero_retries_makes_one_request(ollama: FakeOllama) -> None:
    ollama.fail_next("500", times=10)

    with pytest.raises(ResponseError):
        _llm(ollama.url, retries=0).run(QUESTION)

    assert len(ollama.requests) == 1


def test_hang_is_bounded_by_timeout_per_attempt(ollama: FakeOllama) -> None:
    ollama.fail_next("hang", times=10)

    with pytest.raises(httpx.ReadTimeout):
        _llm(ollama.url, retries=1).run(QUESTION)

    assert len(ollama.requests) == 2


def test_hang_then_success(ollama: FakeOllama) -> None:
    ollama.fail_next("hang")

    result = _llm(ollama.url, retries=1).run(QUESTION)

    assert result["replies"][0].text == CHAT["message"]["content"]
    assert len(ollama.requests) == 2


def test_dropped_connection_is_retried(ollama: FakeOllama) -> None:
    ollama.fail_next("drop")

    result = _llm(ollama.url, retries=2).run(QUESTION)

    assert result["replies"][0].text == CHAT["message"]["content"]
    assert len(ollama.requests) == 2


def test_persistently_dropped_connection_raises(ollama: FakeOllama) -> None:
    ollama.fail_next("drop", times=10)

    with pytest.raises(httpx.RemoteProtocolError):
        _llm(ollama.url, retries=2).run(QUESTION)

    assert len(ollama.requests) == 3


def test_refused_connection_is_retried_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING", logger="components.generators.retrying_ollama_chat_generator")

    with pytest.raises(ConnectionError):  # ollama wraps httpx.ConnectError into the builtin ConnectionError
        _llm(_closed_port_url(), retries=2).run(QUESTION)

    retries = [r for r in caplog.records if r.name == "components.generators.retrying_ollama_chat_generator"]
    assert [getattr(r, "attempt", None) for r in retries] == [1, 2]
    assert {getattr(r, "attempts", None) for r in retries} == {3}
    assert {getattr(r, "operation", None) for r in retries} == {"chat"}
    assert "attempt 1 of 3" in retries[0].getMessage()


def test_streaming_refused_connection_is_retried() -> None:
    chunks: list[StreamingChunk] = []

    with pytest.raises(httpx.ConnectError):  # streaming requests are lazy: ollama does not wrap this one
        _llm(_closed_port_url(), retries=1).run(QUESTION, streaming_callback=chunks.append)

    assert chunks == []


# --- streaming --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["503", "drop"])
def test_streaming_failure_before_the_first_chunk_is_retried(ollama: FakeOllama, fault: str) -> None:
    ollama.fail_next(fault)
    chunks: list[StreamingChunk] = []

    result = _llm(ollama.url, retries=2).run(QUESTION, streaming_callback=chunks.append)

    assert len(ollama.requests) == 2
    assert all(body["stream"] is True for body in ollama.requests)
    assert [c.content for c in chunks] == [c["message"]["content"] for c in CHAT_STREAM]
    assert "".join(c.content for c in chunks) == STREAMED_TEXT
    assert result["replies"][0].text == STREAMED_TEXT


def test_streaming_failure_after_a_chunk_is_not_retried(ollama: FakeOllama) -> None:
    ollama.fail_next("cut", times=10)
    chunks: list[StreamingChunk] = []

    with pytest.raises(httpx.RemoteProtocolError):
        _llm(ollama.url, retries=2).run(QUESTION, streaming_callback=chunks.append)

    assert len(ollama.requests) == 1
    assert [c.content for c in chunks] == [CHAT_STREAM[0]["message"]["content"]]


def test_init_streaming_callback_is_tracked_too(ollama: FakeOllama) -> None:
    chunks: list[StreamingChunk] = []
    llm = _llm(ollama.url, retries=2, streaming_callback=chunks.append)
    ollama.fail_next("cut")

    with pytest.raises(httpx.RemoteProtocolError):
        llm.run(QUESTION)

    assert len(ollama.requests) == 1
    ollama.fail_next("500")
    chunks.clear()
    assert llm.run(QUESTION)["replies"][0].text == STREAMED_TEXT
    assert "".join(c.content for c in chunks) == STREAMED_TEXT
    assert len(ollama.requests) == 3


# --- async ------------------------------------------------------------------------------------------------------


def test_run_async_retries_transient_failures(ollama: FakeOllama) -> None:
    ollama.fail_next("500")

    result = asyncio.run(_llm(ollama.url, retries=2).run_async(QUESTION))

    assert result["replies"][0].text == CHAT["message"]["content"]
    assert len(ollama.requests) == 2


def test_run_async_does_not_retry_client_errors(ollama: FakeOllama) -> None:
    ollama.fail_next("400", times=10)

    with pytest.raises(ResponseError):
        asyncio.run(_llm(ollama.url, retries=2).run_async(QUESTION))

    assert len(ollama.requests) == 1


def test_run_async_streaming_with_an_async_callback(ollama: FakeOllama) -> None:
    ollama.fail_next("429")
    texts: list[str] = []

    async def on_chunk(chunk: StreamingChunk) -> None:
        texts.append(chunk.content)

    result = asyncio.run(_llm(ollama.url, retries=2).run_async(QUESTION, streaming_callback=on_chunk))

    assert len(ollama.requests) == 2
    assert "".join(texts) == STREAMED_TEXT
    assert result["replies"][0].text == STREAMED_TEXT


def test_run_async_streaming_cut_is_not_retried(ollama: FakeOllama) -> None:
    ollama.fail_next("cut", times=10)
    texts: list[str] = []

    async def on_chunk(chunk: StreamingChunk) -> None:
        texts.append(chunk.content)

    with pytest.raises(httpx.RemoteProtocolError):
        asyncio.run(_llm(ollama.url, retries=2).run_async(QUESTION, streaming_callback=on_chunk))

    assert len(ollama.requests) == 1
    assert texts == [CHAT_STREAM[0]["message"]["content"]]


# --- in a YAML pipeline -----------------------------------------------------------------------------------------


def test_in_a_yaml_pipeline(ollama: FakeOllama) -> None:
    yaml_text = f"""
components:
  prompt_builder:
    type: haystack.components.builders.chat_prompt_builder.ChatPromptBuilder
    init_parameters:
      required_variables: [question]
      template: |
        {{% message role="user" %}}{{{{ question }}}}{{% endmessage %}}
  llm:
    type: components.generators.retrying_ollama_chat_generator.RetryingOllamaChatGenerator
    init_parameters:
      model: llama3.2:3b
      url: {ollama.url}
      timeout: 1
      retries: 2
      retry_initial_delay: 0.01
      retry_max_delay: 0.05
connections:
  - {{sender: prompt_builder.prompt, receiver: llm.messages}}
"""
    pipeline = Pipeline.loads(yaml_text, allowed_modules=["components"])
    llm = pipeline.get_component("llm")
    assert isinstance(llm, RetryingOllamaChatGenerator) and llm.retries == 2
    ollama.fail_next("503")
    chunks: list[StreamingChunk] = []

    result = pipeline.run(
        {"prompt_builder": {"question": "How long is the warranty?"}, "llm": {"streaming_callback": chunks.append}}
    )

    assert result["llm"]["replies"][0].text == STREAMED_TEXT
    assert "".join(c.content for c in chunks) == STREAMED_TEXT
    assert len(ollama.requests) == 2
    assert ollama.requests[-1]["messages"] == [{"role": "user", "content": "How long is the warranty?"}]


@pytest.fixture
def ollama(fake_ollama: FakeOllama) -> FakeOllama:
    """The shared fault-injecting Ollama (app.testing.fakes)."""
    return fake_ollama


def test_a_url_from_the_environment_is_resolved_at_warm_up_and_serialized_as_written(
    ollama: FakeOllama, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLLAMA_URL", ollama.url)  # a cluster's Ollama service, e.g. http://ollama:11434
    llm = _llm("${OLLAMA_URL:-http://localhost:11434}")

    assert llm.run(QUESTION)["replies"][0].text == CHAT["message"]["content"]
    assert len(ollama.requests) == 1
    assert llm.to_dict()["init_parameters"]["url"] == "${OLLAMA_URL:-http://localhost:11434}"
