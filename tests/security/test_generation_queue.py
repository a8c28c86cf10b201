"""Red-team finding 1, "one reader stalls everyone": eight generated `/query` calls from one reader key made an
admin's `GET /v1/models` wait 66 s (generations waiting for the model held the default pool's threads, and key
checks need a thread too).

The app runs in-process with its real lifespan and auth on; the LLM is `SlowChatGenerator` (1.5 s per answer under
one lock, as llama.cpp), the gate lets every passage through so each generation reaches it. The model's queue:
RAG_GENERATION_QUEUE=3, RAG_GENERATION_QUEUE_PER_KEY=2.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from app.testing.api import admin_headers
from app.testing.profiles import edit_yaml
from app.testing.slow_chat_generator import SlowChatGenerator

COLLECTION = "stall"
QUESTION = "What colour is the lighthouse on Skerry Point?"
TEXT = "The lighthouse on Skerry Point is painted red and white. It was built in 1874 by the harbour board.\n"
ANSWER_SECONDS = 1.5
BOUND_S = 2.0  # what a listing or key check may take while the model is busy (it took 66 s)
# More generations than the event loop's default pool has threads (min(32, cores + 4)): before the fix, every thread
# was taken by one waiting for the model. The red-team pass sent eight.
GENERATIONS = max(8, min(32, (os.cpu_count() or 1) + 4) + 2)


def _slow_llm(query: dict[str, Any]) -> None:
    components = query["components"]
    components["llm"] = {
        "type": "app.testing.slow_chat_generator.SlowChatGenerator",
        "init_parameters": {"seconds": ANSWER_SECONDS, "tokens": 4},
    }
    components["gate"]["init_parameters"]["min_score"] = -1.0  # every retrieved passage reaches the LLM


@pytest.fixture(scope="module")
def queue_settings(tmp_path_factory, make_tiny_profile) -> Settings:
    root = tmp_path_factory.mktemp("generation-queue")
    pipelines = make_tiny_profile(root / "pipelines")
    edit_yaml(pipelines / "query.yml", _slow_llm)
    return Settings(
        data_dir=root / "data",
        pipelines_dir=pipelines,
        rate_limit="off",
        generation_queue=3,
        generation_queue_per_key=2,
        generation_threads=1,
    )


@pytest.fixture(scope="module")
def keys(queue_settings) -> dict[str, dict[str, str]]:
    """Headers of an admin key and two reader keys."""
    data_dir = queue_settings.data_dir
    return {
        "admin": admin_headers(data_dir),
        "reader": admin_headers(data_dir, role="reader"),
        "other_reader": admin_headers(data_dir, role="reader"),
    }


@pytest.fixture(scope="module")
def client(queue_settings, keys) -> Iterator[TestClient]:
    with TestClient(create_app(queue_settings)) as test_client:
        files = {"files": ("skerry.txt", TEXT.encode(), "text/plain")}
        uploaded = test_client.post(
            "/documents/upload", files=files, data={"collection": COLLECTION}, headers=keys["admin"]
        )
        assert uploaded.status_code == 200, uploaded.text
        yield test_client


def _wait_until(condition: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def _depth(client: TestClient, headers: dict[str, str]) -> float | None:
    text = client.get("/metrics", headers=headers).text
    found = re.search(r"^rag_generation_queue_depth ([0-9.]+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else None


def _query(client: TestClient, headers: dict[str, str], path: str = "/query", **extra: Any) -> httpx.Response:
    if path == "/v1/chat/completions":
        body: dict[str, Any] = {"messages": [{"role": "user", "content": QUESTION}], "collection": COLLECTION}
    else:
        body = {"question": QUESTION, "collection": COLLECTION}
    return client.post(path, json={**body, **extra}, headers=headers)


def _assert_queue_full(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["Retry-After"].isdigit() and int(response.headers["Retry-After"]) >= 1
    error = response.json()["error"]
    assert error["code"] == code
    assert error["detail"]["retry_after"] == int(response.headers["Retry-After"])


def test_eight_generated_queries_from_one_reader_key_do_not_stall_an_admins_models_listing(client, keys) -> None:
    """While one reader key fires more generations than the default pool has threads, another key's key check,
    `GET /v1/models`, `GET /collections` and a search-only query answer within BOUND_S; the reader's surplus
    beyond its share of the model's queue is turned away at once with 429 and Retry-After."""
    calls_before = SlowChatGenerator.calls
    with ThreadPoolExecutor(GENERATIONS) as pool:
        futures: list[Future[httpx.Response]] = [
            pool.submit(_query, client, keys["reader"]) for _ in range(GENERATIONS)
        ]
        _wait_until(lambda: SlowChatGenerator.calls > calls_before)  # the model is busy answering
        time.sleep(0.5)  # every request has arrived and waits (or was turned away)
        took: dict[str, float] = {}
        for name, call in (
            ("GET /v1/models", lambda: client.get("/v1/models", headers=keys["admin"])),
            ("GET /collections", lambda: client.get("/collections", headers=keys["other_reader"])),
            ("search-only /query", lambda: _query(client, keys["other_reader"], generate=False)),
        ):
            started = time.perf_counter()
            response = call()
            took[name] = time.perf_counter() - started
            assert response.status_code == 200, (name, response.text)
        responses = [future.result(timeout=600) for future in futures]
    assert max(took.values()) < BOUND_S, took
    statuses = [response.status_code for response in responses]
    assert statuses.count(200) == 2, statuses  # RAG_GENERATION_QUEUE_PER_KEY
    assert statuses.count(429) == GENERATIONS - 2, statuses
    for response in responses:
        if response.status_code == 200:
            assert response.json()["answer"] == "The answer is in the passage [1]."
        else:
            _assert_queue_full(response, 429, "generation_busy")
    assert _depth(client, keys["admin"]) == 0


def test_full_model_queue_answers_429_per_key_and_503_overall_on_every_generating_route(client, keys) -> None:
    """Three generations (a JSON answer, an SSE stream, an OpenAI stream) fill the queue: the gauge shows 3; the
    reader's third gets 429, any other key 503, on all three routes, all with Retry-After and the JSON error body;
    the admitted ones complete and give their places back."""
    admitted = [
        (keys["reader"], "/query", {}),
        (keys["reader"], "/query/stream", {}),
        (keys["other_reader"], "/v1/chat/completions", {"stream": True}),
    ]
    with ThreadPoolExecutor(len(admitted)) as pool:
        futures = []
        for headers, path, extra in admitted:
            futures.append(pool.submit(_query, client, headers, path, **extra))
            time.sleep(0.2)  # admitted in this order
        _wait_until(lambda: _depth(client, keys["admin"]) == 3)
        for path, extra in (("/query", {}), ("/query/stream", {}), ("/v1/chat/completions", {"stream": True})):
            _assert_queue_full(_query(client, keys["reader"], path, **extra), 429, "generation_busy")
            _assert_queue_full(_query(client, keys["other_reader"], path, **extra), 503, "overloaded")
            _assert_queue_full(_query(client, keys["admin"], path, **extra), 503, "overloaded")
        assert _query(client, keys["admin"], generate=False).status_code == 200  # search-only: no place needed
        answers = [future.result(timeout=600) for future in futures]
    assert [answer.status_code for answer in answers] == [200, 200, 200], [a.text for a in answers]
    assert answers[0].json()["answer"] == "The answer is in the passage [1]."
    assert "event: sources" in answers[1].text and "event: done" in answers[1].text
    assert "[1]." in answers[2].text and answers[2].text.rstrip().endswith("data: [DONE]")
    assert _depth(client, keys["admin"]) == 0
    assert _query(client, keys["reader"]).status_code == 200  # the places were given back
