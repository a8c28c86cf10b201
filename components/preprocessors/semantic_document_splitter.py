"""Embedding-based (semantic) splitting that works offline: Haystack's splitter with a regex sentence splitter."""

from __future__ import annotations

import re
from typing import Any

from haystack import component
from haystack.components.preprocessors import EmbeddingBasedDocumentSplitter

# A sentence ends at ., ! or ? (optionally followed by closing quotes/brackets) before whitespace,
# or at a blank line. Common abbreviations are not treated as sentence ends.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+|\n\s*\n")
_ABBREVIATIONS = frozenset({"e.g.", "i.e.", "etc.", "vs.", "mr.", "mrs.", "dr.", "prof.", "fig.", "no.", "cf."})


class RegexSentenceSplitter:
    """Splits text into sentences with character offsets, without NLTK (whose punkt data needs a download)."""

    def split_sentences(self, text: str) -> list[dict[str, Any]]:
        """Return `[{"sentence", "start", "end"}]` covering `text` completely, whitespace kept with each sentence."""
        sentences: list[dict[str, Any]] = []
        start = 0
        for match in _SENTENCE_END.finditer(text):
            end = match.end()
            words = text[start : match.start()].split()
            if words and words[-1].lower() in _ABBREVIATIONS:
                continue
            if text[start:end].strip():
                sentences.append({"sentence": text[start:end], "start": start, "end": end})
                start = end
        if text[start:].strip():
            sentences.append({"sentence": text[start:], "start": start, "end": len(text)})
        elif sentences:
            sentences[-1]["sentence"] += text[start:]
            sentences[-1]["end"] = len(text)
        return sentences


@component
class SemanticDocumentSplitter(EmbeddingBasedDocumentSplitter):
    """
    Haystack's `EmbeddingBasedDocumentSplitter` with an offline regex sentence splitter.

    Groups of sentences are embedded with the given document embedder (our `OnnxDocumentEmbedder` in YAML) and the
    text is cut where the cosine distance between neighbouring groups is above the chosen percentile.
    All init parameters are those of `EmbeddingBasedDocumentSplitter`; `language`, `use_split_rules` and
    `extend_abbreviations` are kept for YAML compatibility but the regex splitter ignores them.
    """

    def warm_up(self) -> None:
        """Use the regex sentence splitter and warm up the embedder."""
        if self.sentence_splitter is None:
            self.sentence_splitter = RegexSentenceSplitter()  # type: ignore[assignment]
        EmbeddingBasedDocumentSplitter.warm_up(self)

    async def warm_up_async(self) -> None:
        """Async variant of `warm_up`."""
        if self.sentence_splitter is None:
            self.sentence_splitter = RegexSentenceSplitter()  # type: ignore[assignment]
        await EmbeddingBasedDocumentSplitter.warm_up_async(self)
