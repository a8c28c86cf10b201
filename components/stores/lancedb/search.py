"""The two kinds of search on the LanceDB table: vector (cosine) and full-text (BM25), each with a SQL prefilter."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
from haystack import logging
from lancedb.query import FullTextOperator, MatchQuery

from components.stores.lancedb.filters import and_sql

logger = logging.getLogger(__name__)

_MAX_FTS_TERMS = 64
_FTS_TERM_RE = re.compile(r"\w+", re.UNICODE)


def vector_search(
    table: Any,
    query: np.ndarray,
    *,
    where: str | None,
    limit: int,
    columns: list[str],
    indexed: bool,
    nprobes: Callable[[], int],
) -> pa.Table:
    """
    Return the `limit` rows nearest to `query` (cosine) among those matching `where`, with `_distance`.

    With a vector index (`indexed`), `nprobes()` partitions are probed; if that finds fewer than `limit` rows while
    more match, the search is redone exactly, so a selective filter never loses rows to the approximation.
    LanceDB never returns rows whose embedding is NULL.
    """

    def run(exact: bool) -> pa.Table:
        builder = (
            table.search(query, vector_column_name="embedding", query_type="vector")
            .distance_type("cosine")
            .select([*columns, "_distance"])
            .limit(limit)
        )
        if where:
            builder = builder.where(where, prefilter=True)
        builder = builder.bypass_vector_index() if exact else builder.nprobes(nprobes())
        return builder.to_arrow()

    if not indexed:
        return run(exact=True)
    rows = run(exact=False)
    if rows.num_rows < limit:
        available = int(table.count_rows(and_sql(where, "embedding IS NOT NULL")))
        if available > rows.num_rows:
            logger.debug(
                "ANN search returned {got} of {wanted} rows; falling back to exact search",
                got=rows.num_rows,
                wanted=limit,
            )
            rows = run(exact=True)
    return rows


def fts_search(
    table: Any, terms: str, *, where: str | None, limit: int, columns: list[str], column: str = "content"
) -> pa.Table:
    """Return the `limit` rows whose `column` (the full-text indexed one) best matches any of `terms`, among those
    matching `where`, with `_score`.

    `terms` are plain words (see `sanitize_fts_query`); `Document.score` comes from `_score` (BM25).
    """
    match = MatchQuery(
        terms,
        column,
        boost=1.0,
        fuzziness=0,
        max_expansions=50,
        operator=FullTextOperator.OR,
        prefix_length=0,
        document_granularity=None,
    )
    builder = table.search(match, query_type="fts").select([*columns, "_score"]).limit(limit)
    if where:
        builder = builder.where(where, prefilter=True)
    return builder.to_arrow()


def sanitize_fts_query(query: str) -> str:
    """Reduce a user query to plain word terms separated by spaces (no operators, quotes or punctuation)."""
    terms = _FTS_TERM_RE.findall(query)
    # `\w` includes "_"; a term made only of underscores is not a word
    terms = [t for t in terms if t.strip("_")]
    return " ".join(terms[:_MAX_FTS_TERMS])
