"""The model's queue: admission per key and overall, places given back exactly when the work is done."""

from __future__ import annotations

import asyncio
import threading

import pytest

from app import metrics
from app.errors import GenerationBusyError, OverloadedError
from app.services.generation_queue import GenerationQueue


def test_admission_per_key_then_overall_with_retry_after() -> None:
    queue = GenerationQueue(workers=1, limit=3, per_key=2)
    places = [queue.admit("a"), queue.admit("a")]
    with pytest.raises(GenerationBusyError) as busy:
        queue.admit("a")
    assert busy.value.headers == {"Retry-After": str(busy.value.detail["retry_after"])}
    places.append(queue.admit("b"))
    with pytest.raises(OverloadedError) as full:
        queue.admit("c")
    assert int(full.value.headers["Retry-After"]) >= 1
    assert queue.depth == 3 and metrics.GENERATION_QUEUE_DEPTH._value.get() == 3
    places[0].release()
    places[0].release()  # once only
    assert queue.depth == 2
    queue.admit("c")
    assert metrics.GENERATION_QUEUE_DEPTH._value.get() == 3


def test_place_is_held_until_the_work_ends_and_released_when_cancelled_before_start() -> None:
    queue = GenerationQueue(workers=1, limit=2, per_key=2)
    gate = threading.Event()
    running = queue.submit(queue.admit("a"), gate.wait, 30)
    waiting = queue.submit(queue.admit("a"), lambda: "never")
    assert queue.depth == 2
    assert waiting.cancel()  # not started: the single thread is busy
    assert queue.depth == 1
    gate.set()
    assert running.result(timeout=10) is True
    assert queue.depth == 0
    queue.shutdown()


def test_run_awaits_the_work_on_the_queue_threads_and_releases_on_error() -> None:
    queue = GenerationQueue(workers=1, limit=1, per_key=1)

    def fail() -> None:
        raise ValueError("boom")

    async def scenario() -> str:
        with pytest.raises(ValueError):
            await queue.run("a", fail)
        assert queue.depth == 0
        return await queue.run("a", lambda: threading.current_thread().name)

    assert asyncio.run(scenario()).startswith("rag-generate")
    assert queue.depth == 0
