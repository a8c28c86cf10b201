"""Search a vector store (a collection) the way OpenAI's `POST /v1/vector_stores/{id}/search` does.

Retrieval is the query pipeline's own (hybrid full-text + vector search, fused, reranked when the profile reranks),
run search-only through `QueryService.ask(..., generate=False)`: no LLM call. What this module adds is OpenAI's
request and reply: the attribute filter grammar (`app.services.openai_filters`), a list of queries, a score in
[0, 1] with a threshold, a deterministic query rewrite, and each passage's file id, file name and attributes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from haystack import Document, logging

from app.errors import InvalidInputError
from app.services.documents import _TAG_EXCLUDE
from app.services.openai_filters import translate_filters
from app.services.query import QueryService, Source
from components.joiners.reciprocal_rank_fusion_joiner import tie_key
from components.rankers.latest_version_filter import latest_versions

logger = logging.getLogger(__name__)

MAX_QUERIES = 10  # queries in one list `query`: each one is a retrieval run
# Chunk metadata the service, the converters or the Files API set; every other key is a user attribute (a tag).
INTERNAL_META = _TAG_EXCLUDE | {"file_id"}

# Words a keyword query does without: question words, auxiliaries, pronouns, articles and common prepositions.
STOPWORDS = frozenset(
    """
    a an the and or but if then so of to in on at by for from with about into over under as than that this these those
    what which who whom whose when where why how is are was were be been being am do does did done doing have has had
    having can could should would will shall may might must i me my we our you your he she it its they them their
    please tell explain describe show give find there here any some all just also not no yes
    """.split()
)
_EDGE_PUNCTUATION = "\"'`.,;:!?()[]{}<>\u00ab\u00bb\u201c\u201d\u2018\u2019"  # and the typographic quotes


def rewrite_query(query: str) -> str:
    """The keyword form of a natural-language query: the words left once question words, auxiliaries, pronouns,
    articles and common prepositions are removed and the punctuation around each word is stripped (inside a word it
    stays: `apt-get`, `R-intro.pdf`), in their order, case kept. Deterministic, no model; a query with nothing left
    stays as it was.

    >>> rewrite_query("How do I install apt-get on Debian?")
    'install apt-get Debian'
    """
    words = [word.strip(_EDGE_PUNCTUATION) for word in query.split()]
    kept = [word for word in words if word and word.lower() not in STOPWORDS]
    return " ".join(kept) if kept else query.strip()


def unit_scores(scores: Sequence[float | None]) -> list[float]:
    """The passages' scores as numbers in [0, 1], order kept.

    The default pipelines fuse full-text and vector results with reciprocal rank fusion as Haystack's DocumentJoiner
    normalises it (`ReciprocalRankFusionJoiner`): 1.0 for a passage ranked first by both retrievers, about 0.5 for
    one ranked first by one of them only, decreasing with the rank; a reranking profile gives its reranker's
    relevance (0 to 1). Scores already in [0, 1] are kept as they are; when a pipeline gives any score outside it (a
    raw cross-encoder logit), all of that run's scores go through the logistic function, which keeps their order. A
    passage without a score gets 0.
    """
    known = [s for s in scores if s is not None and math.isfinite(s)]
    squash = any(not 0.0 <= s <= 1.0 for s in known)
    out: list[float] = []
    for score in scores:
        if score is None or not math.isfinite(score):
            out.append(0.0)
        elif squash:
            out.append(1.0 / (1.0 + math.exp(-max(min(score, 500.0), -500.0))))
        else:
            out.append(float(score))
    return out


@dataclass
class SearchHit:
    """One passage of a vector store search, in OpenAI's terms plus our extensions (page, document, chunk)."""

    file_id: str
    filename: str
    score: float
    attributes: dict[str, Any]
    text: str
    page: int | None
    document_id: str | None
    chunk_id: str


@dataclass
class SearchPage:
    """The queries as searched (rewritten when asked) and the hits, best first."""

    search_query: list[str]
    hits: list[SearchHit] = field(default_factory=list)


class VectorStoreSearch:
    """Search-only retrieval over a collection with OpenAI's parameters (the route checks existence and scope)."""

    def __init__(self, query: QueryService, store: Any, *, touch: Callable[[str], None] | None = None) -> None:
        """
        :param query: the query service whose pipeline retrieves.
        :param store: the document store, read by chunk id for the passages' metadata (file id and attributes).
        :param touch: called with the vector store id after each search (the vector store service's
            `last_active_at` update), when there is one.
        """
        self.query = query
        self.store = store
        self.touch = touch

    def search(
        self,
        vector_store_id: str,
        query: str | list[str],
        *,
        max_num_results: int = 10,
        filters: dict[str, Any] | None = None,
        score_threshold: float = 0.0,
        rewrite: bool = False,
        visibility: dict[str, Any] | None = None,
    ) -> SearchPage:
        """Run every query (at most `MAX_QUERIES`) through the query pipeline, search-only; merge them by chunk
        (a chunk found by several queries keeps its best score), drop hits scoring below `score_threshold` and older
        versions of a document found in a newer one by another query, and keep the best `max_num_results`.
        InvalidInputError for a malformed query, filter or limit. `visibility`: the caller's read filter
        (`app.services.visibility.read_filter`), ANDed into every store query."""
        queries = [query] if isinstance(query, str) else list(query)
        if not queries or len(queries) > MAX_QUERIES:
            raise InvalidInputError(f"query must be a string or a list of 1 to {MAX_QUERIES} strings")
        if not all(isinstance(q, str) and q.strip() for q in queries):
            raise InvalidInputError("every query must be a non-empty string")
        if not 1 <= max_num_results <= self.query.max_top_k:
            raise InvalidInputError(f"max_num_results must be between 1 and {self.query.max_top_k}")
        if not 0.0 <= score_threshold <= 1.0:
            raise InvalidInputError("ranking_options.score_threshold must be between 0 and 1")
        haystack_filters = translate_filters(filters)
        searched = [rewrite_query(q) if rewrite else q.strip() for q in queries]
        best: dict[str, tuple[float, Source]] = {}
        for text in searched:
            result = self.query.ask(
                text,
                collection=vector_store_id,
                top_k=max_num_results,
                filters=haystack_filters,
                generate=False,
                visibility=visibility,
            )
            for source, score in zip(result.sources, unit_scores([s.score for s in result.sources]), strict=True):
                if source.chunk_id not in best or score > best[source.chunk_id][0]:
                    best[source.chunk_id] = (score, source)
        # ties (a fused ranking gives some) by the text's hash, as ReciprocalRankFusionJoiner orders them, then by chunk
        # id: the same request lists its hits in the same order every time, and the same files in another store too
        ranked = sorted(best.values(), key=lambda pair: (-pair[0], tie_key(pair[1].text), pair[1].chunk_id))
        kept = [(score, source) for score, source in ranked if score >= score_threshold]
        if len(searched) > 1:
            # Each query is a retrieval of its own: a new version of a document committed between two of them must
            # not give the merged page chunks of both (each query's own result is one version: the pipeline's
            # LatestVersionFilter). A chunk gone from the store since its query counts as an older version.
            metas = self._metas(vector_store_id, [source.chunk_id for _, source in kept], visibility)
            kept = latest_versions(
                kept,
                lambda hit: (
                    metas.get(hit[1].chunk_id) or {"collection": vector_store_id, "document_id": hit[1].document_id}
                ),
            )[:max_num_results]
        else:
            kept = kept[:max_num_results]
            metas = self._metas(vector_store_id, [source.chunk_id for _, source in kept], visibility)
        if self.touch is not None:
            self.touch(vector_store_id)
        return SearchPage(
            search_query=searched,
            hits=[_hit(score, source, metas.get(source.chunk_id, {})) for score, source in kept],
        )

    def _metas(
        self, collection: str, chunk_ids: list[str], visibility: dict[str, Any] | None = None
    ) -> dict[str, dict[str, Any]]:
        """The metadata of the chunks found, by id (a pipeline that returns merged parents may find none: the hit
        then carries what the source knows)."""
        if not chunk_ids:
            return {}
        documents: list[Document] = self.store.filter_documents(
            {
                "operator": "AND",
                "conditions": [
                    {"field": "meta.collection", "operator": "==", "value": collection},
                    {"field": "id", "operator": "in", "value": chunk_ids},
                    *([visibility] if visibility else []),
                ],
            }
        )
        return {doc.id: dict(doc.meta) for doc in documents}


def attributes(meta: dict[str, Any]) -> dict[str, Any]:
    """A chunk's user attributes: its metadata without what the service sets (`INTERNAL_META`, `_`-prefixed keys)
    and without empty values (a store may return every known column, unset ones as null)."""
    return {k: v for k, v in meta.items() if k not in INTERNAL_META and not k.startswith("_") and v is not None}


def _hit(score: float, source: Source, meta: dict[str, Any]) -> SearchHit:
    file_id = meta.get("file_id") or meta.get("document_id") or source.document_id or source.chunk_id
    page = meta.get("page", source.page)
    return SearchHit(
        file_id=str(file_id),
        filename=str(meta.get("file_name") or source.filename or ""),
        score=score,
        attributes=attributes(meta),
        text=source.text,
        page=page if isinstance(page, int) and not isinstance(page, bool) else None,
        document_id=meta.get("document_id") or source.document_id,
        chunk_id=source.chunk_id,
    )
