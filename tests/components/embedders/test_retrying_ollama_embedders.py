"""RetryingOllamaTextEmbedder and RetryingOllamaDocumentEmbedder against a local fault-injecting `/api/embed` server.

The server (stdlib `http.server` on 127.0.0.1) answers with the recorded shape in
`tests/contracts/recordings/ollama/embed.json` (one small deterministic vector per input) and can be told to fail the
next requests: an HTTP status, a hang longer than the client's `timeout`, or a connection dropped before a response.
"""

from __future__ import annotations

import asyncio
import copy
import socket
from typing import Any

import httpx
import pytest
from haystack import Document, Pipeline
from haystack.core.serialization import component_from_dict, component_to_dict
from ollama import ResponseError

from app.testing.fakes import FakeOllama
from app.testing.fakes import fake_embedding as vector
from components.embedders.retrying_ollama_document_embedder import RetryingOllamaDocumentEmbedder
from components.embedders.retrying_ollama_text_embedder import RetryingOllamaTextEmbedder

FAST = {"timeout": 1, "retry_initial_delay": 0.01, "retry_max_delay": 0.05}


def _embeddings(documents: Any) -> list[list[float] | None]:
    return [document.embedding for document in documents]


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def _text_embedder(url: str, **kwargs: Any) -> RetryingOllamaTextEmbedder:
    return RetryingOllamaTextEmbedder(url=url, **{**FAST, **kwargs})


def _document_embedder(url: str, **kwargs: Any) -> RetryingOllamaDocumentEmbedder:
    return RetryingOllamaDocumentEmbedder(url=url, progress_bar=False, **{**FAST, **kwargs})


DOCUMENTS = [Document(content="one"), Document(content="two words"), Document(content="three small words")]
EMBEDDERS = [RetryingOllamaTextEmbedder, RetryingOllamaDocumentEmbedder]


# --- init and serialization -------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", EMBEDDERS)
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"retries": -1}, "retries"),
        ({"retry_initial_delay": 0.0}, "retry_initial_delay"),
        ({"retry_max_delay": 0}, "retry_max_delay"),
        ({"retry_initial_delay": 1.0, "retry_max_delay": 0.5}, "must not exceed"),
    ],
)
def test_init_rejects_bad_retry_settings(cls: type, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


@pytest.mark.parametrize("cls", EMBEDDERS)
def test_retry_defaults(cls: type) -> None:
    embedder = cls()

    assert (embedder.retries, embedder.retry_initial_delay, embedder.retry_max_delay) == (2, 0.5, 8.0)


def test_text_embedder_to_dict_from_dict_round_trip() -> None:
    embedder = RetryingOllamaTextEmbedder(
        model="nomic-embed-text", url="http://ollama:11434", timeout=30, keep_alive="5m", dimensions=256, retries=5
    )

    data = component_to_dict(embedder, "embedder")

    assert data == {
        "type": "components.embedders.retrying_ollama_text_embedder.RetryingOllamaTextEmbedder",
        "init_parameters": {
            "model": "nomic-embed-text",
            "url": "http://ollama:11434",
            "generation_kwargs": {},
            "timeout": 30,
            "keep_alive": "5m",
            "dimensions": 256,
            "retries": 5,
            "retry_initial_delay": 0.5,
            "retry_max_delay": 8.0,
        },
    }
    restored = component_from_dict(RetryingOllamaTextEmbedder, copy.deepcopy(data), "embedder")
    assert isinstance(restored, RetryingOllamaTextEmbedder)
    assert restored.retries == 5 and restored.timeout == 30
    assert component_to_dict(restored, "restored") == data


def test_document_embedder_to_dict_from_dict_round_trip() -> None:
    embedder = RetryingOllamaDocumentEmbedder(
        model="nomic-embed-text",
        timeout=120,
        batch_size=8,
        progress_bar=False,
        meta_fields_to_embed=["title"],
        retries=0,
        retry_initial_delay=1.0,
        retry_max_delay=2.0,
    )

    data = component_to_dict(embedder, "embedder")

    params = data["init_parameters"]
    assert data["type"] == "components.embedders.retrying_ollama_document_embedder.RetryingOllamaDocumentEmbedder"
    assert (params["retries"], params["retry_initial_delay"], params["retry_max_delay"]) == (0, 1.0, 2.0)
    assert (params["batch_size"], params["meta_fields_to_embed"], params["progress_bar"]) == (8, ["title"], False)
    restored = component_from_dict(RetryingOllamaDocumentEmbedder, copy.deepcopy(data), "embedder")
    assert isinstance(restored, RetryingOllamaDocumentEmbedder)
    assert (restored.retries, restored.retry_initial_delay, restored.retry_max_delay) == (0, 1.0, 2.0)
    assert component_to_dict(restored, "restored") == data


# --- RetryingOllamaTextEmbedder ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["500", "429", "503"])
def test_text_embedder_transient_status_then_success(ollama: FakeOllama, status: str) -> None:
    ollama.fail_next(status, times=2)

    result = _text_embedder(ollama.url, retries=2).run(text="a question")

    assert result["embedding"] == vector("a question")
    assert len(ollama.requests) == 3


def test_text_embedder_persistent_failure_raises_after_retries_plus_one_requests(ollama: FakeOllama) -> None:
    ollama.fail_next("500", times=10)

    with pytest.raises(ResponseError) as raised:
        _text_embedder(ollama.url, retries=2).run(text="a question")

    assert raised.value.status_code == 500
    assert len(ollama.requests) == 3


def test_text_embedder_client_error_is_not_retried(ollama: FakeOllama) -> None:
    ollama.fail_next("400", times=10)

    with pytest.raises(ResponseError) as raised:
        _text_embedder(ollama.url, retries=2).run(text="a question")

    assert raised.value.status_code == 400
    assert len(ollama.requests) == 1


def test_text_embedder_hang_is_bounded_by_timeout_per_attempt(ollama: FakeOllama) -> None:
    ollama.fail_next("hang", times=10)

    with pytest.raises(httpx.ReadTimeout):
        _text_embedder(ollama.url, retries=1).run(text="a question")

    assert len(ollama.requests) == 2


def test_text_embedder_dropped_connection_is_retried(ollama: FakeOllama) -> None:
    ollama.fail_next("drop")

    result = _text_embedder(ollama.url, retries=1).run(text="a question")

    assert result["embedding"] == vector("a question")
    assert len(ollama.requests) == 2


def test_text_embedder_refused_connection_is_retried_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING", logger="components.generators.retrying_ollama_chat_generator")

    with pytest.raises(ConnectionError):  # ollama wraps httpx.ConnectError into the builtin ConnectionError
        _text_embedder(_closed_port_url(), retries=2).run(text="a question")

    retries = [r for r in caplog.records if getattr(r, "component", None) == "RetryingOllamaTextEmbedder"]
    assert [getattr(r, "attempt", None) for r in retries] == [1, 2]
    assert {getattr(r, "operation", None) for r in retries} == {"embed"}


def test_text_embedder_run_async_retries(ollama: FakeOllama) -> None:
    ollama.fail_next("503")

    result = asyncio.run(_text_embedder(ollama.url, retries=2).run_async(text="a question"))

    assert result["embedding"] == vector("a question")
    assert len(ollama.requests) == 2


def test_text_embedder_run_async_does_not_retry_client_errors(ollama: FakeOllama) -> None:
    ollama.fail_next("404", times=10)

    with pytest.raises(ResponseError):
        asyncio.run(_text_embedder(ollama.url, retries=2).run_async(text="a question"))

    assert len(ollama.requests) == 1


# --- RetryingOllamaDocumentEmbedder -----------------------------------------------------------------------------


def test_document_embedder_transient_failure_then_success(ollama: FakeOllama) -> None:
    ollama.fail_next("503", times=2)

    result = _document_embedder(ollama.url, retries=2).run(documents=DOCUMENTS)

    assert _embeddings(result["documents"]) == [vector(d.content or "") for d in DOCUMENTS]
    assert len(ollama.requests) == 3
    assert ollama.requests[-1]["input"] == [d.content for d in DOCUMENTS]


def test_document_embedder_retries_only_the_failing_batch(ollama: FakeOllama) -> None:
    embedder = _document_embedder(ollama.url, retries=2, batch_size=1)
    embedder.run(documents=DOCUMENTS[:1])  # one successful request first
    ollama.fail_next("429")  # ... so the next run's first batch is the one that fails once

    result = embedder.run(documents=DOCUMENTS)

    assert _embeddings(result["documents"]) == [vector(d.content or "") for d in DOCUMENTS]
    inputs = [body["input"] for body in ollama.requests]
    assert inputs == [["one"], ["one"], ["one"], ["two words"], ["three small words"]]


def test_document_embedder_persistent_failure_raises_after_retries_plus_one_requests(ollama: FakeOllama) -> None:
    ollama.fail_next("500", times=10)

    with pytest.raises(ResponseError) as raised:
        _document_embedder(ollama.url, retries=2).run(documents=DOCUMENTS)

    assert raised.value.status_code == 500
    assert len(ollama.requests) == 3


def test_document_embedder_client_error_is_not_retried(ollama: FakeOllama) -> None:
    ollama.fail_next("400", times=10)

    with pytest.raises(ResponseError) as raised:
        _document_embedder(ollama.url, retries=2).run(documents=DOCUMENTS)

    assert raised.value.status_code == 400
    assert len(ollama.requests) == 1


def test_document_embedder_hang_is_bounded_by_timeout_per_attempt(ollama: FakeOllama) -> None:
    ollama.fail_next("hang", times=10)

    with pytest.raises(httpx.ReadTimeout):
        _document_embedder(ollama.url, retries=1).run(documents=DOCUMENTS)

    assert len(ollama.requests) == 2


def test_document_embedder_dropped_connection_is_retried(ollama: FakeOllama) -> None:
    ollama.fail_next("drop")

    result = _document_embedder(ollama.url, retries=1).run(documents=DOCUMENTS)

    assert None not in _embeddings(result["documents"])
    assert len(ollama.requests) == 2


def test_document_embedder_run_async_retries(ollama: FakeOllama) -> None:
    ollama.fail_next("500")

    result = asyncio.run(_document_embedder(ollama.url, retries=2).run_async(documents=DOCUMENTS))

    assert _embeddings(result["documents"]) == [vector(d.content or "") for d in DOCUMENTS]
    assert len(ollama.requests) == 2


def test_document_embedder_run_async_persistent_failure_keeps_the_cause(ollama: FakeOllama) -> None:
    ollama.fail_next("503", times=10)

    with pytest.raises(RuntimeError, match="Embedding batch 0") as raised:
        asyncio.run(_document_embedder(ollama.url, retries=2).run_async(documents=DOCUMENTS))

    assert isinstance(raised.value.__cause__, ResponseError)
    assert raised.value.__cause__.status_code == 503
    assert len(ollama.requests) == 3


# --- in a YAML pipeline -----------------------------------------------------------------------------------------


def test_in_a_yaml_pipeline(ollama: FakeOllama) -> None:
    yaml_text = f"""
components:
  embedder:
    type: components.embedders.retrying_ollama_document_embedder.RetryingOllamaDocumentEmbedder
    init_parameters:
      model: nomic-embed-text
      url: {ollama.url}
      timeout: 1
      batch_size: 2
      progress_bar: false
      meta_fields_to_embed: [title]
      retries: 2
      retry_initial_delay: 0.01
      retry_max_delay: 0.05
connections: []
"""
    pipeline = Pipeline.loads(yaml_text, allowed_modules=["components"])
    embedder = pipeline.get_component("embedder")
    assert isinstance(embedder, RetryingOllamaDocumentEmbedder) and embedder.retries == 2
    ollama.fail_next("500")
    documents = [Document(content="lasts 24 months", meta={"title": "Kettle"}), Document(content="other")]

    result = pipeline.run({"embedder": {"documents": documents}})

    embedded = result["embedder"]["documents"]
    assert _embeddings(embedded) == [vector("Kettle lasts 24 months"), vector("other")]
    assert [body["input"] for body in ollama.requests] == [["Kettle lasts 24 months", "other"]] * 2


@pytest.fixture
def ollama(fake_ollama: FakeOllama) -> FakeOllama:
    """The shared fault-injecting Ollama (app.testing.fakes)."""
    return fake_ollama


def test_a_url_from_the_environment_is_resolved_at_warm_up_and_serialized_as_written(
    ollama: FakeOllama, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLLAMA_URL", ollama.url)
    reference = "${OLLAMA_URL:-http://localhost:11434}"
    text_embedder, document_embedder = _text_embedder(reference), _document_embedder(reference)

    assert len(text_embedder.run(text="one")["embedding"]) > 0
    assert all(_embeddings(document_embedder.run(documents=copy.deepcopy(DOCUMENTS))["documents"]))
    assert len(ollama.requests) >= 2
    for embedder in (text_embedder, document_embedder):
        assert component_to_dict(embedder, "embedder")["init_parameters"]["url"] == reference
