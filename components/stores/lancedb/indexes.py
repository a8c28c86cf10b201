"""Index upkeep of the LanceDB table: vector, full-text and scalar indices, compaction, bounded caches.

* Vector: IVF_FLAT (cosine) on ``embedding``, built once ``vector_index_min_rows`` rows have embeddings and
  retrained by compaction once the table has doubled since (see :meth:`TableIndexes.build_vector`).
* Full-text: on ``keyword_text`` when the table has that column, else on ``content``; built by the first keyword
  search.
* Scalar: BTREE on ``id`` (duplicate checks, deletes) and on every promoted meta column (filter pushdown).
* Caches: one LanceDB session per store bounds the in-memory index and metadata caches.

Several processes (uvicorn workers, a CLI ingest beside the server) may build the same index at once; losing that
race is not an error (:func:`create_index_unless_raced`).
"""

from __future__ import annotations

import math
import threading
from typing import Any

import lancedb
from haystack import logging
from lancedb.index import FTS, BTree, IvfFlat

logger = logging.getLogger(__name__)

#: An IVF index needs a reasonable number of training rows.
MIN_ROWS_FOR_VECTOR_INDEX = 256
# Vector index: IVF_FLAT (cosine), chosen by measurement (see `TableIndexes.build_vector`).
_ROWS_PER_PARTITION = 8192
_MAX_PARTITIONS = 1024
#: Default of `vector_search_rows`: up to this many rows every IVF partition is probed (exact results); above it,
#: a share of the partitions that scans about this many rows (at least 10% of them).
EXHAUSTIVE_PROBE_ROWS = 200_000
_MIN_PROBE_SHARE = 0.1
# Compaction retrains the vector index once the table has grown by this factor since it was trained.
_RETRAIN_GROWTH = 2


def cache_session(*, index_cache_mb: int, metadata_cache_mb: int) -> Any:
    """
    A LanceDB session whose caches are bounded: index pages (full-text, vector, scalar) and table metadata, in MiB.

    Unbounded, the index cache grows with every index version a long-running server reads.
    """
    return lancedb.Session(
        index_cache_size_bytes=index_cache_mb << 20,
        metadata_cache_size_bytes=metadata_cache_mb << 20,
    )


class TableIndexes:
    """
    What this process knows about the indices of one table, and their upkeep.

    Every method takes the open table. The store's lock is shared, so that index builds never overlap its writes.
    """

    def __init__(self, *, table_name: str, scalar_columns: list[str], lock: threading.RLock) -> None:
        """
        :param table_name: The table's name, for log messages.
        :param scalar_columns: Columns that get a BTREE index (`id` and the promoted meta columns).
        :param lock: The store's lock.
        """
        self.table_name = table_name
        self.scalar_columns = scalar_columns
        self._lock = lock
        self.has_vector_index = False
        self.has_fts_index = False
        self.checked_version: int | None = None  # table version at which building the vector index was considered
        self.vector_index_partitions: int | None = None
        self.vector_index_rows: int | None = None  # rows the index was trained on, if built by this instance
        self.fts_column = "content"  # set by the store from the table's schema

    def reset(self) -> None:
        """Forget everything (the table was dropped)."""
        self.has_vector_index = False
        self.has_fts_index = False
        self.checked_version = None
        self.vector_index_partitions = None
        self.vector_index_rows = None

    def refresh(self, table: Any) -> set[str]:
        """Update the index flags from the table; return the names of the indexed columns."""
        self.has_vector_index = False
        self.has_fts_index = False
        indexed: set[str] = set()
        for index in table.list_indices():
            columns = list(index.columns)
            indexed.update(columns)
            if columns == ["embedding"]:
                self.has_vector_index = True
            elif columns == [self.fts_column] and str(index.index_type).upper() == "FTS":
                self.has_fts_index = True
        return indexed

    def maybe_build(self, table: Any, *, min_rows: int) -> None:
        """Build the vector and scalar indices once `min_rows` rows have embeddings (never if `min_rows` is 0)."""
        if self.has_vector_index or min_rows <= 0:
            return
        threshold = max(min_rows, MIN_ROWS_FOR_VECTOR_INDEX)
        if int(table.count_rows()) < threshold:
            return
        version = int(table.version)
        if self.checked_version == version:
            return
        with self._lock:
            self.refresh(table)
            if self.has_vector_index:
                return
            embedded = int(table.count_rows("embedding IS NOT NULL"))
            self.checked_version = version
            if embedded >= threshold:
                self.build_scalar(table, replace=False)
                self.build_vector(table, embedded)

    def build_all(self, table: Any) -> None:
        """Build every index now; the vector index (retrained on the current data) if 256 rows have embeddings."""
        self.ensure_fts(table)
        self.build_scalar(table, replace=True)
        embedded = int(table.count_rows("embedding IS NOT NULL"))
        if embedded >= MIN_ROWS_FOR_VECTOR_INDEX:
            self.build_vector(table, embedded)

    def build_vector(self, table: Any, embedded_rows: int) -> None:
        """
        Build (or rebuild) the IVF_FLAT cosine index on `embedding`.

        Measured on 2 cores with random-normal 384-d vectors: IVF_HNSW_SQ took 40+ s to build 100k rows and
        reached recall@10 0.84-0.91 at 12-15 ms; IVF_FLAT builds in ~1.5 s and, probing every partition, returns
        exact results (recall 1.0 on any data) at ~13 ms p50 for 100k rows - faster than LanceDB's plain flat
        scan (~80 ms) because the index keeps the vectors packed per partition. See `nprobes` for bigger tables.
        """
        partitions = partitions_for(embedded_rows)
        with self._lock:
            logger.info(
                "Building IVF_FLAT vector index on {rows} rows ({partitions} partitions)",
                rows=embedded_rows,
                partitions=partitions,
            )
            table.create_index(
                "embedding", config=IvfFlat(distance_type="cosine", num_partitions=partitions), replace=True
            )
            self.has_vector_index = True
            self.vector_index_partitions = partitions
            self.vector_index_rows = embedded_rows

    def build_scalar(self, table: Any, *, replace: bool) -> None:
        """BTREE indices on `scalar_columns` (all of them with `replace`, else the missing ones)."""
        indexed = self.refresh(table)
        for column in self.scalar_columns:
            if replace or column not in indexed:
                create_index_unless_raced(table, column, BTree())

    def ensure_fts(self, table: Any) -> None:
        """Build the full-text index on `fts_column` unless it exists."""
        if self.has_fts_index:
            return
        with self._lock:
            self.refresh(table)
            if self.has_fts_index:
                return
            logger.info(
                "Building full-text index on {column} of {table_name}",
                column=self.fts_column,
                table_name=self.table_name,
            )
            if create_index_unless_raced(table, self.fts_column, FTS(with_position=False)):
                self.has_fts_index = True
            else:  # another process built it at the same moment
                self.refresh(table)

    def compact(self, table: Any) -> None:
        """
        Compact the table's files and bring its indices up to date with the latest writes.

        New rows are added to the existing indices; the vector index is retrained instead once the table has
        doubled since this instance trained it, so that its partitions keep matching the data.
        """
        table.optimize()
        if self.has_vector_index and self.vector_index_rows is not None:
            embedded = int(table.count_rows("embedding IS NOT NULL"))
            if embedded >= _RETRAIN_GROWTH * self.vector_index_rows:
                self.build_vector(table, embedded)

    def nprobes(self, table: Any, search_rows: int) -> int:
        """IVF partitions a vector search probes: all of them up to `search_rows` rows, else about that many rows."""
        rows = int(table.count_rows())
        if rows <= search_rows:
            # More probes than partitions is clamped by LanceDB: every partition is searched, results are exact.
            return _MAX_PARTITIONS
        partitions = self.vector_index_partitions or partitions_for(rows)
        share = max(_MIN_PROBE_SHARE, search_rows / rows)
        return max(1, math.ceil(partitions * share))


def create_index_unless_raced(table: Any, column: str, config: Any) -> bool:
    """
    Create (or replace) an index; False when a concurrent writer's commit won the race.

    Several processes (uvicorn workers, a CLI ingest beside the server) may build the same index at once; Lance
    then refuses all but one with a "Retryable commit conflict". The winner's index serves everyone, so losing
    is not an error.
    """
    try:
        table.create_index(column, config=config, replace=True)
    except RuntimeError as error:
        if "commit conflict" not in str(error).lower():
            raise
        logger.info("Index on {column} was built concurrently by another writer", column=column)
        table.checkout_latest()
        return False
    return True


def partitions_for(rows: int) -> int:
    """IVF partitions for an index on `rows` vectors."""
    return max(1, min(_MAX_PARTITIONS, math.ceil(rows / _ROWS_PER_PARTITION)))
