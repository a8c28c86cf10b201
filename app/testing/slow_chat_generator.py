"""A slow stand-in LLM for tests and drills of the model's queue (test support, never shipped YAML).

Like `PackagedLlamaCppChatGenerator` it serializes every answer on one lock (llama.cpp is not thread-safe), so a
caller waiting for it holds its thread, which is what stalled the server when generations shared the default pool.
Each answer takes `seconds`, streamed as `tokens` chunks, and cites passage 1. `calls` counts the answers started.

Pipelines accept its type, `app.testing.slow_chat_generator.SlowChatGenerator`, only while Haystack's
HAYSTACK_DESERIALIZATION_ALLOWLIST names `app.testing`, as the test plugin (`app.testing.plugin`) does.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from haystack import component
from haystack.dataclasses import ChatMessage, StreamingCallbackT, StreamingChunk

_model_lock = threading.Lock()  # one model per process, as with llama.cpp


@component
class SlowChatGenerator:
    """Chat generator that takes `seconds` per answer under one process-wide lock; see the module docstring."""

    calls = 0  # answers started in this process (all instances)

    def __init__(
        self, *, seconds: float = 1.0, tokens: int = 4, reply: str = "The answer is in the passage [1]."
    ) -> None:
        """
        Create the generator.

        :param seconds: how long one answer takes once the lock is held.
        :param tokens: streamed chunks per answer (the reply split evenly).
        :param reply: the answer text.
        :raises ValueError: on an invalid argument.
        """
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            raise ValueError(f"seconds must be a number >= 0, got {seconds!r}")
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
            raise ValueError(f"tokens must be an integer >= 1, got {tokens!r}")
        self.seconds = seconds
        self.tokens = tokens
        self.reply = reply

    @component.output_types(replies=list[ChatMessage])
    def run(
        self,
        messages: list[ChatMessage],
        generation_kwargs: dict[str, Any] | None = None,
        streaming_callback: StreamingCallbackT | None = None,
    ) -> dict[str, list[ChatMessage]]:
        """Wait for the model lock, then answer in `seconds`, streaming the reply in `tokens` chunks."""
        with _model_lock:
            type(self).calls += 1
            step = max(1, -(-len(self.reply) // self.tokens))
            for start in range(0, len(self.reply), step):
                time.sleep(self.seconds / self.tokens)
                if streaming_callback is not None:
                    streaming_callback(StreamingChunk(content=self.reply[start : start + step]))
        return {"replies": [ChatMessage.from_assistant(self.reply)]}
