"""Haystack's RecursiveDocumentSplitter whose chunk size and overlap a run may set (a vector store's chunking)."""

from __future__ import annotations

import threading
from typing import Any, Literal

from haystack import Document, component
from haystack.components.preprocessors.recursive_splitter import RecursiveDocumentSplitter

from components.validation import check_int


@component
class SizedRecursiveSplitter:
    """`RecursiveDocumentSplitter` with its init parameters as the defaults of every run, and `split_length` /
    `split_overlap` run inputs that override them for that run only (one splitter per distinct size is kept, so runs
    of different sizes never share state). The indexing pipeline maps them to its `split_length` / `split_overlap`
    inputs: `{type: static}` chunking of a vector store sets them for that store's files."""

    def __init__(
        self,
        *,
        split_length: int = 1000,
        split_overlap: int = 200,
        split_unit: Literal["word", "char", "token"] = "char",
        separators: list[str] | None = None,
        max_sizes: int = 16,
    ) -> None:
        """:param split_length: the default chunk size, in `split_unit`s.
        :param split_overlap: the default overlap between chunks.
        :param split_unit: as RecursiveDocumentSplitter's.
        :param separators: as RecursiveDocumentSplitter's.
        :param max_sizes: how many sized splitters are kept besides the default one (least recently made first out).
        """
        self.split_length = check_int(split_length, "split_length", minimum=1)
        self.split_overlap = check_int(split_overlap, "split_overlap", minimum=0, maximum=self.split_length - 1)
        self.split_unit = split_unit
        self.separators = separators
        self.max_sizes = check_int(max_sizes, "max_sizes", minimum=1)
        self._default = self._make(self.split_length, self.split_overlap)
        self._sized: dict[tuple[int, int], RecursiveDocumentSplitter] = {}
        self._lock = threading.Lock()

    def _make(self, length: int, overlap: int) -> RecursiveDocumentSplitter:
        return RecursiveDocumentSplitter(
            split_length=length, split_overlap=overlap, split_unit=self.split_unit, separators=self.separators
        )

    def warm_up(self) -> None:
        """Warm the default splitter (a `word`/`token` unit loads its tokenizer or sentence splitter)."""
        self._default.warm_up()

    def _splitter(self, split_length: int | None, split_overlap: int | None) -> RecursiveDocumentSplitter:
        if split_length is None and split_overlap is None:
            return self._default
        length = check_int(split_length if split_length is not None else self.split_length, "split_length", minimum=1)
        overlap = split_overlap if split_overlap is not None else min(self.split_overlap, length // 2)
        overlap = check_int(overlap, "split_overlap", minimum=0, maximum=length - 1)
        if (length, overlap) == (self.split_length, self.split_overlap):
            return self._default
        with self._lock:
            splitter = self._sized.pop((length, overlap), None)
            if splitter is None:
                splitter = self._make(length, overlap)
                splitter.warm_up()
            self._sized[(length, overlap)] = splitter  # most recently used last
            while len(self._sized) > self.max_sizes:
                self._sized.pop(next(iter(self._sized)))
        return splitter

    @component.output_types(documents=list[Document])
    def run(
        self, documents: list[Document], split_length: int | None = None, split_overlap: int | None = None
    ) -> dict[str, Any]:
        """Split `documents`, with this run's `split_length` / `split_overlap` when given (else the init ones)."""
        return dict(self._splitter(split_length, split_overlap).run(documents))
