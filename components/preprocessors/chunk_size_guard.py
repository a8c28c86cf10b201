"""Make sure no chunk is longer than the splitter's size or the embedder's length, whichever branch produced it."""

from __future__ import annotations

from typing import Any

from haystack import Document, component, logging

from components.validation import check_int

logger = logging.getLogger(__name__)


def split_text(text: str, max_chars: int) -> list[str]:
    """`text` in pieces of at most `max_chars`, cut after the last newline or space of each piece when one is in its
    second half (else mid-word); nothing is lost or repeated."""
    pieces: list[str] = []
    start = 0
    while len(text) - start > max_chars:
        window = text[start : start + max_chars]
        cut = max(window.rfind("\n"), window.rfind(" "))
        end = start + cut + 1 if cut >= max_chars // 2 else start + max_chars
        pieces.append(text[start:end])
        start = end
    pieces.append(text[start:])
    return pieces


@component
class ChunkSizeGuard:
    """
    Splits every chunk longer than `max_chars` characters, or (with `max_tokens`) longer than the embedder keeps.

    The splitter keeps its chunks within its `split_length`, but some converters emit final chunks that skip it (the
    CSV converter's rows, for one). A chunk of 120 KB would fill every prompt that retrieves it; placed after the
    branches join and before the chunks are numbered, this guard holds every chunk to the splitter's size.

    A dense embedder truncates its input at `max_length` tokens: the rest of a longer chunk never reaches the vector
    index. With `max_tokens` (the embedder's `max_length`), `tokenizer`, `meta_fields_to_embed` and
    `embedding_separator` set as the document embedder's, the guard counts the tokens of exactly the text the embedder
    will see (meta fields, separator, content, special tokens) and splits a chunk that would be truncated, so every
    chunk is embedded whole. The pipeline loader checks that these match the embedder's settings.

    Pieces keep their chunk's meta (plus the splitter's `split_id` / `split_idx_start`, which `ChunkMetadata` drops);
    chunks within the limits pass through unchanged (the same objects).
    """

    def __init__(
        self,
        *,
        max_chars: int = 1000,
        max_tokens: int | None = None,
        tokenizer: str = "all-MiniLM-L6-v2-int8",
        meta_fields_to_embed: list[str] | None = None,
        embedding_separator: str = "\n",
    ) -> None:
        """
        :param max_chars: the longest chunk content, in characters (the splitter's `split_length`).
        :param max_tokens: the embedder's `max_length` (tokens, special tokens included); None: characters only.
        :param tokenizer: the embedder's tokenizer: the packaged default by name or a tokenizer.json path.
        :param meta_fields_to_embed: the document embedder's `meta_fields_to_embed`.
        :param embedding_separator: the document embedder's `embedding_separator`.
        :raises ValueError: on an invalid argument.
        """
        self.max_chars = check_int(max_chars, "max_chars", minimum=1)
        self.max_tokens = None if max_tokens is None else check_int(max_tokens, "max_tokens", minimum=16, maximum=8192)
        if not isinstance(tokenizer, str) or not tokenizer:
            raise ValueError("tokenizer must be a non-empty string")
        self.tokenizer = tokenizer
        self.meta_fields_to_embed = list(meta_fields_to_embed or [])
        if not all(isinstance(f, str) for f in self.meta_fields_to_embed):
            raise ValueError("meta_fields_to_embed must be a list of strings")
        if not isinstance(embedding_separator, str):
            raise ValueError("embedding_separator must be a string")
        self.embedding_separator = embedding_separator
        self._tokenizer: Any = None

    def warm_up(self) -> None:
        """Load the tokenizer (only with `max_tokens`)."""
        if self.max_tokens is None or self._tokenizer is not None:
            return
        from tokenizers import Tokenizer

        from components.embedders.onnx_backend import resolve_tokenizer_path

        tokenizer = Tokenizer.from_file(str(resolve_tokenizer_path(self.tokenizer)))
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self._tokenizer = tokenizer

    @component.output_types(documents=list[Document])
    def run(self, documents: list[Document]) -> dict[str, list[Document]]:
        """
        :param documents: Chunks from the splitter and the converters that emit final chunks.
        :returns: `documents`: the same chunks in order, the over-long ones replaced by their pieces.
        """
        if self.max_tokens is not None:
            self.warm_up()
        out: list[Document] = []
        for doc in documents:
            if doc.content is None:
                out.append(doc)
                continue
            pieces = split_text(doc.content, self.max_chars) if len(doc.content) > self.max_chars else [doc.content]
            if self.max_tokens is not None:
                pieces = [p for piece in pieces for p in self._split_tokens(doc, piece)]
            if len(pieces) == 1 and pieces[0] is doc.content:
                out.append(doc)
                continue
            logger.info(
                "A chunk of {chars} characters was split into {pieces} pieces (at most {max_chars} characters, "
                "{max_tokens} tokens)",
                chars=len(doc.content),
                pieces=len(pieces),
                max_chars=self.max_chars,
                max_tokens=self.max_tokens,
            )
            # a fresh id per piece (ids hash content and meta): the splitter's bookkeeping fields, which ChunkMetadata
            # removes again, tell identical pieces apart
            offset = 0
            for index, piece in enumerate(pieces):
                out.append(Document(content=piece, meta={**doc.meta, "split_id": index, "split_idx_start": offset}))
                offset += len(piece)
        return {"documents": out}

    def _split_tokens(self, doc: Document, text: str) -> list[str]:
        """`text` in pieces whose embedded form (meta fields + separator + piece) fits `max_tokens`."""
        assert self.max_tokens is not None
        fields = [str(doc.meta[key]) for key in self.meta_fields_to_embed if doc.meta.get(key) is not None]
        prefix = self.embedding_separator.join(fields) + self.embedding_separator if fields else ""
        if len(self._tokenizer.encode(prefix + text).ids) <= self.max_tokens:
            return [text]
        special = len(self._tokenizer.encode("").ids)
        # room for the content; a meta prefix longer than half the budget is truncated by the embedder instead
        budget = (
            self.max_tokens
            - special
            - min(len(self._tokenizer.encode(prefix, add_special_tokens=False).ids), self.max_tokens // 2)
        )
        # balanced pieces (a 300-token chunk becomes two of ~150, not 254 + 46), each cut after a space or newline
        pieces: list[str] = []
        rest = text
        while True:
            encoding = self._tokenizer.encode(rest, add_special_tokens=False)
            count = len(encoding.ids)
            if count <= budget:
                pieces.append(rest)
                return pieces
            pieces_left = -(-count // budget)  # ceil
            target = -(-count // pieces_left)  # ceil(count / pieces_left) <= budget
            end = encoding.offsets[target][0]  # start of the first token of the next piece
            window = rest[:end]
            cut = max(window.rfind("\n"), window.rfind(" "))
            end = cut + 1 if cut >= end // 2 else end
            if end <= 0:  # cannot happen with a budget >= 1; never loop forever
                end = max(len(window), 1)
            pieces.append(rest[:end])
            rest = rest[end:]
            if not rest:
                return pieces
