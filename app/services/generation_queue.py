"""The model's own queue: generations run on a dedicated, bounded executor, never on the event loop's default pool.

A generation is a pipeline run that reaches the LLM (`/query` with `generate`, `/query/stream`,
`/v1/chat/completions`). llama.cpp serializes on one model, so a generation that waits for the model holds its
thread; on the default pool, eight of them from one key left no thread for key checks or listings (a 66 s wait for
`GET /v1/models` in the red-team pass). Here:

- `admit(key_id)` takes a place in the queue, or refuses at once: `GenerationBusyError` (429) when the key already
  holds `per_key` places, `OverloadedError` (503) when all keys together hold `limit`; both carry `Retry-After`;
- `run()` / `submit()` run a callable on the queue's own threads (`workers`, e.g. 1 for llama.cpp); the place is
  given back when the callable returns, or when it is cancelled before it started, never earlier, so the depth
  counts exactly the work that waits for or holds a generation thread;
- `rag_generation_queue_depth` is the number of places held.

Everything else blocking (key checks: `app.composition.Services.auth_executor`; search-only queries, listings:
the default pool) runs on other threads.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from app import metrics
from app.errors import GenerationBusyError, OverloadedError

T = TypeVar("T")

_INITIAL_SECONDS = 5.0  # assumed length of one generation until one has been measured
_SMOOTHING = 0.2  # weight of the newest generation in the moving average of their length


class Place:
    """One admitted generation's place in the queue; `release()` gives it back (once, from any thread)."""

    def __init__(self, queue: GenerationQueue, key_id: str) -> None:
        self._queue = queue
        self.key_id = key_id
        self._released = False
        self._lock = threading.Lock()

    def release(self) -> None:
        with self._lock:
            if self._released:
                return
            self._released = True
        self._queue._give_back(self.key_id)


class GenerationQueue:
    """Admission per API key and overall, plus the executor that runs the admitted generations."""

    def __init__(self, *, workers: int, limit: int, per_key: int) -> None:
        if workers < 1 or limit < 1 or per_key < 1:
            raise ValueError("workers, limit and per_key must be at least 1")
        self.workers = workers
        self.limit = limit
        self.per_key = per_key
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rag-generate")
        self._lock = threading.Lock()
        self._held: dict[str, int] = {}
        self._depth = 0
        self._seconds = _INITIAL_SECONDS
        metrics.GENERATION_QUEUE_DEPTH.set(0)

    @property
    def depth(self) -> int:
        """Places held: generations waiting for or running on the queue's threads."""
        return self._depth

    def retry_after(self) -> int:
        """Seconds until a place is likely free: the queue ahead, at the measured length of one generation."""
        return max(1, math.ceil(self._seconds * max(self._depth, 1) / self.workers))

    def admit(self, key_id: str) -> Place:
        """A place for one generation of `key_id`, or a 429 (the key's share is taken) / 503 (the queue is full)."""
        with self._lock:
            held = self._held.get(key_id, 0)
            if held >= self.per_key:
                raise GenerationBusyError(
                    f"this API key already has {held} answers waiting or being generated; retry later",
                    retry_after=self.retry_after(),
                )
            if self._depth >= self.limit:
                raise OverloadedError(
                    f"the model's queue is full ({self._depth} answers waiting or being generated); retry later",
                    retry_after=self.retry_after(),
                )
            self._held[key_id] = held + 1
            self._depth += 1
            metrics.GENERATION_QUEUE_DEPTH.set(self._depth)
        return Place(self, key_id)

    def _give_back(self, key_id: str) -> None:
        with self._lock:
            held = self._held.get(key_id, 0) - 1
            if held > 0:
                self._held[key_id] = held
            else:
                self._held.pop(key_id, None)
            self._depth = max(self._depth - 1, 0)
            metrics.GENERATION_QUEUE_DEPTH.set(self._depth)

    def submit(self, place: Place, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Run `fn(*args, **kwargs)` on the queue's threads (with the caller's context variables) under `place`,
        which is released when it returns or raises, or if the future is cancelled before it started."""
        context = contextvars.copy_context()

        def work() -> T:
            started = time.perf_counter()
            try:
                return context.run(fn, *args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                self._seconds = (1 - _SMOOTHING) * self._seconds + _SMOOTHING * elapsed
                place.release()

        try:
            future = self._executor.submit(work)
        except RuntimeError:  # shut down
            place.release()
            raise
        future.add_done_callback(lambda done: place.release() if done.cancelled() else None)
        return future

    async def run(self, key_id: str, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Admit one generation of `key_id` (429/503 when full) and await `fn(*args, **kwargs)` on the queue."""
        place = self.admit(key_id)
        return await asyncio.wrap_future(self.submit(place, fn, *args, **kwargs))

    def shutdown(self) -> None:
        """Stop taking work; generations not started are cancelled (their places released), running ones finish."""
        self._executor.shutdown(wait=False, cancel_futures=True)
