"""`OllamaTextEmbedder` with retries (exponential backoff with jitter) on transient failures of the Ollama server."""

from typing import Any

from haystack import component
from haystack_integrations.components.embedders.ollama import OllamaTextEmbedder
from tenacity import AsyncRetrying, Retrying

from components.generators.retrying_ollama_chat_generator import (
    OllamaUrlFromEnvironment,
    ollama_retry_kwargs,
    validate_retry_settings,
)


@component
class RetryingOllamaTextEmbedder(OllamaUrlFromEnvironment, OllamaTextEmbedder):
    """
    `OllamaTextEmbedder` that retries transient failures with exponential backoff and jitter.

    Retried: HTTP 429 and 5xx, refused connections, timeouts (`timeout` bounds each attempt) and dropped or reset
    connections; never other 4xx (see `components.generators.retrying_ollama_chat_generator`). At most
    `retries + 1` requests per `run`; each retry is logged as a warning.

    ```python
    embedder = RetryingOllamaTextEmbedder(model="nomic-embed-text", timeout=30, retries=2)
    embedder.run(text="What is R?")["embedding"]
    ```
    """

    def __init__(
        self,
        model: str = "nomic-embed-text",
        url: str = "http://localhost:11434",
        generation_kwargs: dict[str, Any] | None = None,
        timeout: int = 120,
        keep_alive: float | str | None = None,
        dimensions: int | None = None,
        *,
        retries: int = 2,
        retry_initial_delay: float = 0.5,
        retry_max_delay: float = 8.0,
    ) -> None:
        """
        Create the embedder; the parameters up to `dimensions` are `OllamaTextEmbedder`'s.

        :param retries: Further attempts after a transient failure (0 disables retrying).
        :param retry_initial_delay: Seconds before the first retry; doubles per retry, plus up to 1 s of jitter.
        :param retry_max_delay: Upper bound in seconds of any wait between attempts.
        :raises ValueError: If `retries < 0`, a delay is not > 0, or `retry_initial_delay > retry_max_delay`.
        """
        validate_retry_settings(retries, retry_initial_delay, retry_max_delay)
        OllamaTextEmbedder.__init__(
            self,
            model=model,
            url=url,
            generation_kwargs=generation_kwargs,
            timeout=timeout,
            keep_alive=keep_alive,
            dimensions=dimensions,
        )
        self.retries = retries
        self.retry_initial_delay = retry_initial_delay
        self.retry_max_delay = retry_max_delay

    @component.output_types(embedding=list[float], meta=dict[str, Any])
    def run(
        self, text: str, generation_kwargs: dict[str, Any] | None = None
    ) -> dict[str, list[float] | dict[str, Any]]:
        """
        `OllamaTextEmbedder.run`, retried on transient failures.

        :param text: The text to embed.
        :param generation_kwargs: Ollama options for this call.
        :returns: `embedding`: the vector; `meta`: `{"model": ...}`.
        """
        retrying = Retrying(**ollama_retry_kwargs(self, "embed"))
        return retrying(OllamaTextEmbedder.run, self, text, generation_kwargs)

    @component.output_types(embedding=list[float], meta=dict[str, Any])
    async def run_async(
        self, text: str, generation_kwargs: dict[str, Any] | None = None
    ) -> dict[str, list[float] | dict[str, Any]]:
        """
        `OllamaTextEmbedder.run_async`, retried on transient failures.

        :param text: The text to embed.
        :param generation_kwargs: Ollama options for this call.
        :returns: `embedding`: the vector; `meta`: `{"model": ...}`.
        """
        retrying = AsyncRetrying(**ollama_retry_kwargs(self, "embed"))
        result: dict[str, list[float] | dict[str, Any]] = await retrying(
            OllamaTextEmbedder.run_async, self, text, generation_kwargs
        )
        return result
