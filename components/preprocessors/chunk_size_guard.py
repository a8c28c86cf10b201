"""Make sure no chunk is longer than the splitter's size, whichever branch produced it."""

from __future__ import annotations

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
    Splits every chunk longer than `max_chars` into pieces of at most `max_chars`.

    The splitter keeps its chunks within its `split_length`, but some converters emit final chunks that skip it (the
    CSV converter's rows, for one). A chunk of 120 KB would fill every prompt that retrieves it; placed after the
    branches join and before the chunks are numbered, this guard holds every chunk to the splitter's size. Pieces keep
    their chunk's meta (plus the splitter's `split_id` / `split_idx_start`, which `ChunkMetadata` drops); chunks within
    the limit pass through unchanged (the same objects).
    """

    def __init__(self, *, max_chars: int = 1000) -> None:
        """
        :param max_chars: the longest chunk content, in characters (the splitter's `split_length`).
        :raises ValueError: on an invalid argument.
        """
        self.max_chars = check_int(max_chars, "max_chars", minimum=1)

    @component.output_types(documents=list[Document])
    def run(self, documents: list[Document]) -> dict[str, list[Document]]:
        """
        :param documents: Chunks from the splitter and the converters that emit final chunks.
        :returns: `documents`: the same chunks in order, the over-long ones replaced by their pieces.
        """
        out: list[Document] = []
        for doc in documents:
            if doc.content is None or len(doc.content) <= self.max_chars:
                out.append(doc)
                continue
            pieces = split_text(doc.content, self.max_chars)
            logger.info(
                "A chunk of {chars} characters was split into {pieces} pieces of at most {max_chars}",
                chars=len(doc.content),
                pieces=len(pieces),
                max_chars=self.max_chars,
            )
            # a fresh id per piece (ids hash content and meta): the splitter's bookkeeping fields, which ChunkMetadata
            # removes again, tell identical pieces apart
            offset = 0
            for index, piece in enumerate(pieces):
                out.append(Document(content=piece, meta={**doc.meta, "split_id": index, "split_idx_start": offset}))
                offset += len(piece)
        return {"documents": out}
