"""`OllamaDocumentEmbedder` with retries (exponential backoff with jitter) on transient Ollama server failures."""

import asyncio
from typing import Any

from haystack import component
from haystack_integrations.components.embedders.ollama import OllamaDocumentEmbedder
from tenacity import AsyncRetrying, Retrying
from tqdm import tqdm

from components.generators.retrying_ollama_chat_generator import (
    OllamaUrlFromEnvironment,
    ollama_retry_kwargs,
    validate_retry_settings,
)


@component
class RetryingOllamaDocumentEmbedder(OllamaUrlFromEnvironment, OllamaDocumentEmbedder):
    """
    `OllamaDocumentEmbedder` that retries transient failures with exponential backoff and jitter.

    Retried: HTTP 429 and 5xx, refused connections, timeouts (`timeout` bounds each attempt) and dropped or reset
    connections; never other 4xx (see `components.generators.retrying_ollama_chat_generator`). Each `/api/embed`
    batch is retried on its own (at most `retries + 1` requests per batch), so a failure in batch 40 does not
    re-embed batches 1-39. `run` and `run_async` are the parent's; they embed through the batch methods below.
    Each retry is logged as a warning.

    ```python
    embedder = RetryingOllamaDocumentEmbedder(model="nomic-embed-text", batch_size=8, retries=2)
    embedder.run(documents=[Document(content="Hello")])["documents"][0].embedding
    ```
    """

    def __init__(
        self,
        model: str = "nomic-embed-text",
        url: str = "http://localhost:11434",
        generation_kwargs: dict[str, Any] | None = None,
        timeout: int = 120,
        keep_alive: float | str | None = None,
        prefix: str = "",
        suffix: str = "",
        progress_bar: bool = True,
        meta_fields_to_embed: list[str] | None = None,
        embedding_separator: str = "\n",
        batch_size: int = 32,
        dimensions: int | None = None,
        *,
        retries: int = 2,
        retry_initial_delay: float = 0.5,
        retry_max_delay: float = 8.0,
    ) -> None:
        """
        Create the embedder; the parameters up to `dimensions` are `OllamaDocumentEmbedder`'s.

        :param retries: Further attempts per batch after a transient failure (0 disables retrying).
        :param retry_initial_delay: Seconds before the first retry; doubles per retry, plus up to 1 s of jitter.
        :param retry_max_delay: Upper bound in seconds of any wait between attempts.
        :raises ValueError: If `retries < 0`, a delay is not > 0, or `retry_initial_delay > retry_max_delay`.
        """
        validate_retry_settings(retries, retry_initial_delay, retry_max_delay)
        OllamaDocumentEmbedder.__init__(
            self,
            model=model,
            url=url,
            generation_kwargs=generation_kwargs,
            timeout=timeout,
            keep_alive=keep_alive,
            prefix=prefix,
            suffix=suffix,
            progress_bar=progress_bar,
            meta_fields_to_embed=meta_fields_to_embed,
            embedding_separator=embedding_separator,
            batch_size=batch_size,
            dimensions=dimensions,
        )
        self.retries = retries
        self.retry_initial_delay = retry_initial_delay
        self.retry_max_delay = retry_max_delay

    def _embed_batch(
        self, texts_to_embed: list[str], batch_size: int, generation_kwargs: dict[str, Any] | None = None
    ) -> list[list[float]]:
        """Embed `texts_to_embed` in batches of `batch_size` (called by `run`), retrying each batch on its own."""
        client = self._client
        if client is None:
            raise RuntimeError("The embedder is not warmed up")
        embeddings: list[list[float]] = []
        for start in tqdm(
            range(0, len(texts_to_embed), batch_size), disable=not self.progress_bar, desc="Calculating embeddings"
        ):
            retrying = Retrying(**ollama_retry_kwargs(self, "embed"))
            result = retrying(
                client.embed,
                model=self.model,
                input=texts_to_embed[start : start + batch_size],
                options=generation_kwargs,
                keep_alive=self.keep_alive,
                dimensions=self.dimensions,
            )
            embeddings.extend(result["embeddings"])
        return embeddings

    async def _embed_batch_async(
        self, texts_to_embed: list[str], batch_size: int, generation_kwargs: dict[str, Any] | None = None
    ) -> list[list[float]]:
        """
        Embed `texts_to_embed` in concurrent batches (called by `run_async`), retrying each batch on its own.

        As in `OllamaDocumentEmbedder`, a batch that still fails raises `RuntimeError` (its cause is the last error).
        """
        client = self._async_client
        if client is None:
            raise RuntimeError("The embedder is not warmed up")

        async def embed(batch: list[str]) -> Any:
            retrying = AsyncRetrying(**ollama_retry_kwargs(self, "embed"))
            return await retrying(
                client.embed,
                model=self.model,
                input=batch,
                options=generation_kwargs,
                keep_alive=self.keep_alive,
                dimensions=self.dimensions,
            )

        batches = [texts_to_embed[i : i + batch_size] for i in range(0, len(texts_to_embed), batch_size)]
        results = await asyncio.gather(*(embed(batch) for batch in batches), return_exceptions=True)
        embeddings: list[list[float]] = []
        for index, result in enumerate(results):
            if isinstance(result, BaseException):
                raise RuntimeError(f"Embedding batch {index} raised an exception.") from result
            embeddings.extend(result["embeddings"])
        return embeddings
