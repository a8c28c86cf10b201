"""The query pipeline's `CitationRepointer` applied to streamed tokens, so the stream and the answer agree."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from haystack import Document, Pipeline
from haystack.dataclasses import StreamingChunk

from components.builders.citation_repointer import CitationRepointer, CitationStream


class StreamedCitations:
    """
    One streamed run's citation rewriting. A `timing.ComponentWatcher`: when the component that feeds the
    repointer's `documents` returns (before the generator runs), the passages are known and `feed` rewrites each
    streamed piece as the repointer will rewrite the whole answer; before that (or when the generator runs without
    them) the text passes unchanged.
    """

    def __init__(self, repointer: CitationRepointer, component: str, socket: str) -> None:
        self.repointer = repointer
        self.component = component
        self.socket = socket
        self._stream: CitationStream | None = None

    @classmethod
    def for_pipeline(cls, pipeline: Pipeline) -> StreamedCitations | None:
        """The rewriting for one run of `pipeline`, or None when it has no `CitationRepointer` fed with passages."""
        for name, instance in pipeline.walk():
            if not isinstance(instance, CitationRepointer):
                continue
            for sender, _, edge in pipeline.graph.in_edges(name, data=True):
                if edge["to_socket"].name == "documents":
                    return cls(instance, sender, edge["from_socket"].name)
        return None

    def started(self, name: str, type_name: str) -> None:
        return None

    def received(self, name: str, type_name: str, inputs: dict[str, Any]) -> None:
        return None

    def returned(self, name: str, type_name: str, outputs: dict[str, Any]) -> None:
        if name == self.component and self._stream is None:
            documents: list[Document] = list(outputs.get(self.socket) or [])
            self._stream = self.repointer.stream(documents)

    def feed(self, piece: str) -> str:
        """The text to send for the next streamed `piece` (held back while a `[n]` is incomplete)."""
        return piece if self._stream is None else self._stream.feed(piece)

    def wrap(self, callback: Callable[[StreamingChunk], None]) -> Callable[[StreamingChunk], None]:
        """`callback`, given the rewritten text of each chunk (chunks whose text is held back are not passed on)."""

        def on_chunk(chunk: StreamingChunk) -> None:
            if not chunk.content:
                callback(chunk)
                return
            text = self.feed(chunk.content)
            if text:
                callback(replace(chunk, content=text))

        return on_chunk
