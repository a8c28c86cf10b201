"""Reciprocal rank fusion of retrieved lists, in an order that does not depend on which retriever answered first."""

import hashlib
from collections import defaultdict
from dataclasses import replace
from typing import Any

from haystack import Document, component, default_from_dict, default_to_dict
from haystack.core.component.types import Variadic

#: Haystack's constant (`haystack.utils.misc._reciprocal_rank_fusion`): 60 in the paper, plus 1 for 0-based ranks.
RRF_K = 61


def reciprocal_rank_fusion(document_lists: list[list[Document]]) -> list[Document]:
    """Fuse ranked lists with equal weights, as Haystack's `DocumentJoiner(join_mode="reciprocal_rank_fusion")`
    scores them (the same score for every document), then order by score and, between equal scores, by the sha256
    of the passage's text (then by id, for equal texts). A document found by several retrievers is returned as the
    one that ranked it best (with the fused score).

    Haystack keeps equal scores in the order the lists arrived. Under the concurrent scheduler
    (`Pipeline.run_async`) that is the order in which the retrievers finished, so a passage first in one list and
    one first in the other swap places from one request to the next, and at the `top_k` cut one of them is dropped
    at random. The text's hash gives one answer that depends on the passages only: a chunk id hashes its metadata
    (the collection, the upload), so ordering by id would give the same files another order of tied passages in
    another collection, or after a re-upload.
    """
    if not document_lists:
        return []
    count = len(document_lists)
    scores: dict[str, float] = defaultdict(float)
    documents: dict[str, Document] = {}
    best_rank: dict[str, int] = {}
    for ranked in document_lists:
        for rank, document in enumerate(ranked):
            scores[document.id] += (1 / count * count) / (RRF_K + rank)  # Haystack's arithmetic: the same floats
            if document.id not in best_rank or rank < best_rank[document.id]:  # the copy ranked best
                best_rank[document.id] = rank
                documents[document.id] = document
    fused = [replace(document, score=scores[doc_id] / (count / RRF_K)) for doc_id, document in documents.items()]
    return sorted(fused, key=lambda document: (-(document.score or 0.0), tie_key(document.content), document.id))


def tie_key(text: str | None) -> str:
    """What orders passages of equal score: the sha256 of their text (the same in every collection)."""
    return hashlib.sha256((text or "").encode("utf-8")).hexdigest()


@component
class ReciprocalRankFusionJoiner:
    """
    Joins the lists of several retrievers by reciprocal rank fusion, best first, keeping the `top_k` best.

    The scores are those of Haystack's `DocumentJoiner` in `reciprocal_rank_fusion` mode with equal weights (1.0 for
    a passage first in every list). Equal scores are ordered by the passage text's sha256 (then by id) instead of by
    arrival, so identical requests get identical passages in an identical order (and thus identical prompts and
    citation numbers) however the concurrent retrievers are scheduled, and the same files in another collection get
    the same order. Per-list weights are not offered: the lists of a variadic input come in arrival order, so a
    weight could not be tied to one retriever.

    Usage example:
    ```python
    joiner = ReciprocalRankFusionJoiner(top_k=5)
    joiner.run(documents=[dense_hits, keyword_hits])["documents"]
    ```
    """

    def __init__(self, *, top_k: int | None = None) -> None:
        """
        :param top_k: How many fused documents to return (None: all). A `top_k` given to `run()` overrides it.
        :raises ValueError: If `top_k` is not a positive integer.
        """
        self.top_k = _checked_top_k(top_k)

    def to_dict(self) -> dict[str, Any]:
        """Serialize this component to a dictionary."""
        return default_to_dict(self, top_k=self.top_k)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ReciprocalRankFusionJoiner":
        """Deserialize this component from a dictionary."""
        return default_from_dict(cls, data)

    @component.output_types(documents=list[Document])
    def run(self, documents: Variadic[list[Document]], top_k: int | None = None) -> dict[str, list[Document]]:
        """
        Fuse the retrievers' lists.

        :param documents: One ranked list per retriever, best first (in any order).
        :param top_k: How many documents to return; overrides the init value.
        :returns: `documents`, fused and ordered by score, then by the text's hash and id; at most `top_k`.
        """
        fused = reciprocal_rank_fusion(list(documents))
        limit = _checked_top_k(top_k) if top_k is not None else self.top_k
        return {"documents": fused if limit is None else fused[:limit]}


def _checked_top_k(top_k: int | None) -> int | None:
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k <= 0):
        raise ValueError(f"top_k must be a positive integer or None, got {top_k!r}")
    return top_k
