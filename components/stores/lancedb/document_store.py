"""A durable, embedded Haystack DocumentStore on LanceDB.

A Lance table holds the documents (layout in `components.stores.lancedb.converters`), or one table per collection
when the store is partitioned (`components.stores.lancedb.partitions`); the connection and the tables are opened,
created and brought up to date by `components.stores.lancedb.tables`. Filters on promoted meta fields are pushed
down to LanceDB as SQL, the rest is evaluated in Python (`components.stores.lancedb.filters`); the vector, full-text
and scalar indices are kept up to date by `components.stores.lancedb.indexes`; the queries themselves are in
`components.stores.lancedb.search` and `components.stores.lancedb.metadata`. This module holds only the store class,
i.e. Haystack's DocumentStore protocol with its extended, retrieval and async methods.

Every write to a table is a single LanceDB commit (an append, a merge-insert or a delete), so a crash leaves the table
at the previous or the new version, never in between.

The connection is opened lazily, on first use: LanceDB must not be opened before a process forks, and a loader
may still change ``path`` after ``__init__``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from typing import Any

import numpy as np
import pyarrow as pa
from haystack import default_from_dict, default_to_dict, logging
from haystack.dataclasses import Document
from haystack.document_stores.errors import DuplicateDocumentError
from haystack.document_stores.types import DuplicatePolicy
from haystack.errors import FilterError

from components.stores.async_methods import in_thread
from components.stores.grouped_counts import meta_keys
from components.stores.lancedb import metadata
from components.stores.lancedb.converters import (
    BASE_COLUMNS,
    DOC_COLUMNS,
    KEYWORD_COLUMN,
    arrow_to_documents,
    checked_embedding,
    documents_to_arrow,
)
from components.stores.lancedb.filters import (
    DOCUMENT_FIELDS,
    IDENTIFIER_RE,
    filtered_search,
    in_list_sql,
    matching_ids,
    plan_filters,
    require_filters,
    select_rows,
)
from components.stores.lancedb.indexes import EXHAUSTIVE_PROBE_ROWS, TableIndexes
from components.stores.lancedb.search import fts_search, sanitize_fts_query, vector_search
from components.stores.lancedb.tables import ID_LOOKUP_CHUNK, OpenTable, StoreTables
from components.validation import check_int

logger = logging.getLogger(__name__)

DEFAULT_INDEXED_META_FIELDS: tuple[str, ...] = ("collection", "document_id", "file_name", "acl", "tenant")

_RESERVED_NAMES = (
    frozenset(BASE_COLUMNS) | DOCUMENT_FIELDS | {KEYWORD_COLUMN, "_distance", "_score", "_rowid", "_relevance_score"}
)


class LanceDBDocumentStore:
    """
    A Haystack DocumentStore persisted in an embedded LanceDB table.

    Usage:
    ```python
    store = LanceDBDocumentStore(path="data/lancedb", embedding_dim=384)
    store.write_documents(docs)
    hits = store.embedding_retrieval(query_embedding, filters={"field": "meta.collection", "operator": "==",
                                                                "value": "manuals"}, top_k=5)
    ```
    """

    def __init__(
        self,
        *,
        path: str = "lancedb",
        table_name: str = "documents",
        embedding_dim: int = 384,
        indexed_meta_fields: list[str] | None = None,
        keyword_meta_fields: list[str] | None = None,
        vector_index_min_rows: int = 20000,
        vector_search_rows: int = EXHAUSTIVE_PROBE_ROWS,
        optimize_every_writes: int = 20,
        index_cache_mb: int = 256,
        metadata_cache_mb: int = 64,
        reopen_after_versions: int = 50,
        partition_field: str | None = None,
    ) -> None:
        """
        Create the store. Nothing is opened until the first operation.

        :param path: Directory of the LanceDB database. Environment variables (`${RAG_DATA_DIR}/lancedb`) and `~`
            are expanded when the store is first used; a relative path is relative to the working directory.
        :param table_name: Name of the Lance table that holds the documents.
        :param embedding_dim: Dimension of the document embeddings.
        :param indexed_meta_fields: Meta fields mirrored into their own string columns so that filters on them are
            evaluated by LanceDB. Their values must be `str` or `None`. Defaults to
            `["collection", "document_id", "file_name", "acl", "tenant"]`. A table created with fewer gets the
            missing columns when it is opened (one commit each, filled from the stored rows' meta).
        :param keyword_meta_fields: Meta fields whose values are full-text indexed together with the content (e.g.
            `[context_header]` from `ContextualHeader`), so that keyword search finds a chunk by its document title
            and section; the passage returned is still the content alone. A table created with this option (even
            `[]`) has a `keyword_text` column (these fields + content) that the full-text index covers, and in it
            the parents of `HierarchicalDocumentSplitter` (non-empty meta `__children_ids`, stored for
            `AutoMergingRetriever`) are not keyword-indexed; without an embedding they are no vector hit either. A
            table created without it (`None`, the default) indexes `content`; opened with this option, it gets the
            column (one commit, filled with the stored rows' content: re-ingest them to index their fields too).
        :param vector_index_min_rows: Build an approximate vector index once this many documents have embeddings.
        :param vector_search_rows: Up to this many rows a vector search probes every IVF partition (exact results);
            above it, it probes the share of partitions holding about this many rows (at least 10 %), trading recall
            for latency (scan time grows with the rows probed: ~13 ms per 100k 384-d rows on 2 cores).
        :param optimize_every_writes: Compact the table and update its indices after this many writes
            (0 disables automatic optimization).
        :param index_cache_mb: Bound of LanceDB's in-memory cache of index pages (full-text, vector, scalar), MiB.
            Unbounded, it grows with every index version a long-running server reads.
        :param metadata_cache_mb: Bound of LanceDB's cache of table manifests and fragment metadata, MiB.
        :param reopen_after_versions: Reopen the connection, with a fresh cache, once its open tables together moved
            this many versions past the ones they were opened at (0: never). LanceDB keeps native memory for every
            table version a connection follows (~0.15 MiB each, not returned by its cache bounds: `bench/memory.py`,
            case `read`); a server that queries while another process writes would otherwise grow with every write.
            The cost is a cold index cache for the next query.
        :param partition_field: An `indexed_meta_fields` field (`collection`) whose every value gets a table of its
            own (`<table_name>__c_<value>`; documents without it stay in `table_name`), so that keyword scores count
            the term statistics of that value's documents only (LanceDB's are table-wide, whatever the filter). A
            filter that pins the field reads those tables only, any other every table. A write spanning values is
            one commit per table. A table holding several values when the store first opens it so partitioned has
            its rows moved to their tables (logged). `None` (the default): one table.
        :raises ValueError: if a parameter is invalid.
        """
        if not isinstance(path, str) or not path:
            raise ValueError("path must be a non-empty string")
        if not isinstance(table_name, str) or not table_name.strip():
            raise ValueError("table_name must be a non-empty string")
        if not IDENTIFIER_RE.fullmatch(table_name):
            raise ValueError(f"table_name {table_name!r} must contain only letters, digits and underscores")
        check_int(embedding_dim, "embedding_dim", minimum=1)
        fields = list(DEFAULT_INDEXED_META_FIELDS) if indexed_meta_fields is None else list(indexed_meta_fields)
        for name in fields:
            if not isinstance(name, str) or not IDENTIFIER_RE.fullmatch(name):
                raise ValueError(f"indexed meta field {name!r} must be a plain identifier (letters, digits, _)")
            if name in _RESERVED_NAMES:
                raise ValueError(f"indexed meta field {name!r} clashes with a reserved column or Document field")
        if len(set(fields)) != len(fields):
            raise ValueError(f"indexed_meta_fields contains duplicates: {fields}")
        keywords = keyword_meta_fields
        if keywords is not None and (
            not isinstance(keywords, list) or not all(isinstance(name, str) and name for name in keywords)
        ):
            raise ValueError("keyword_meta_fields must be a list of meta field names (or None)")
        check_int(vector_index_min_rows, "vector_index_min_rows", minimum=0)
        check_int(vector_search_rows, "vector_search_rows", minimum=1)
        check_int(optimize_every_writes, "optimize_every_writes", minimum=0)
        check_int(index_cache_mb, "index_cache_mb", minimum=1, maximum=65536)
        check_int(metadata_cache_mb, "metadata_cache_mb", minimum=1, maximum=65536)
        check_int(reopen_after_versions, "reopen_after_versions", minimum=0)
        if partition_field is not None and partition_field not in fields:
            raise ValueError(f"partition_field {partition_field!r} must be one of indexed_meta_fields {fields}")

        self.path = path
        self.table_name = table_name
        self.embedding_dim = embedding_dim
        self.indexed_meta_fields = fields
        self.keyword_meta_fields = None if keywords is None else list(keywords)
        self.vector_index_min_rows = vector_index_min_rows
        self.vector_search_rows = vector_search_rows
        self.optimize_every_writes = optimize_every_writes
        self.index_cache_mb = index_cache_mb
        self.metadata_cache_mb = metadata_cache_mb
        self.reopen_after_versions = reopen_after_versions
        self.partition_field = partition_field

        self._lock = threading.RLock()
        self._tables = StoreTables(self, self._lock)
        self._writes_since_optimize = 0

    # ------------------------------------------------------------------ serialization (the DocumentStore protocol)

    def to_dict(self) -> dict[str, Any]:
        """Serialize the store's configuration."""
        return default_to_dict(
            self,
            path=self.path,
            table_name=self.table_name,
            embedding_dim=self.embedding_dim,
            indexed_meta_fields=list(self.indexed_meta_fields),
            keyword_meta_fields=self.keyword_meta_fields,
            vector_index_min_rows=self.vector_index_min_rows,
            vector_search_rows=self.vector_search_rows,
            optimize_every_writes=self.optimize_every_writes,
            index_cache_mb=self.index_cache_mb,
            metadata_cache_mb=self.metadata_cache_mb,
            reopen_after_versions=self.reopen_after_versions,
            partition_field=self.partition_field,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LanceDBDocumentStore:
        """Deserialize a store from `to_dict` output."""
        return default_from_dict(cls, data)

    # ------------------------------------------------------------------ connection / table

    @property
    def _promoted(self) -> frozenset[str]:
        return frozenset(self.indexed_meta_fields)

    def _get_table(self, *, create: bool, name: str | None = None) -> Any:
        """Return the open table `name` (default: `table_name`), opening (or, with `create`, creating) it on first
        use; `None` if absent."""
        state = self._tables.open(name or self.table_name, create=create)
        return None if state is None else state.table

    # ------------------------------------------------------------------ DocumentStore protocol

    def count_documents(self) -> int:
        """Return the number of stored documents."""
        return sum(int(state.table.count_rows()) for state in self._tables.for_filters(None))

    def filter_documents(self, filters: dict[str, Any] | None = None) -> list[Document]:
        """
        Return the documents that match the filters, with their embeddings.

        :param filters: A Haystack filter, see https://docs.haystack.deepset.ai/docs/metadata-filtering.
        :raises FilterError: if the filter is malformed.
        """
        plan = plan_filters(filters, self._promoted)
        documents: list[Document] = []
        for state in self._tables.for_filters(filters):
            rows = select_rows(state.table, plan, list(BASE_COLUMNS), self.embedding_dim)
            documents.extend(self._to_documents(rows, include_embedding=True))
        return documents

    def write_documents(self, documents: list[Document], policy: DuplicatePolicy = DuplicatePolicy.NONE) -> int:
        """
        Write documents in a single commit (one per table when a partitioned store's batch spans several; there an
        id is unique within its table, as in one index per collection: Haystack's default ids hash the meta, so two
        documents with one id and different partition values have explicit ids).

        :param documents: The documents to write.
        :param policy: `NONE` and `FAIL` raise `DuplicateDocumentError` if an id already exists (nothing is written);
            `SKIP` keeps the stored documents; `OVERWRITE` replaces them.
        :returns: The number of documents written.
        :raises ValueError: if the input is not a list of Documents or a document cannot be stored.
        :raises DuplicateDocumentError: on an existing id with policy `NONE`/`FAIL`.
        """
        if not isinstance(documents, Iterable) or isinstance(documents, str | bytes | dict):
            raise ValueError("Please provide a list of Documents.")
        documents = list(documents)
        if any(not isinstance(doc, Document) for doc in documents):
            raise ValueError("Please provide a list of Documents.")
        if policy == DuplicatePolicy.NONE:
            policy = DuplicatePolicy.FAIL
        if not documents:
            return 0
        documents = self._dedupe_batch(documents, policy)

        with self._lock:
            groups = self._grouped_by_table(documents)
            if policy == DuplicatePolicy.FAIL:
                existing: set[str] = set()
                for name, docs in groups.items():
                    state = self._tables.open(name, create=False)
                    if state is not None:
                        existing |= self._existing_ids(state.table, [d.id for d in docs])
                if existing:
                    raise DuplicateDocumentError(
                        f"{len(existing)} document id(s) already exist, e.g. '{sorted(existing)[0]}'"
                    )
            written = 0
            for name, docs in groups.items():
                state = self._tables.open(name, create=True)
                assert state is not None
                data = self._documents_to_arrow(docs, state)
                if policy == DuplicatePolicy.FAIL:
                    state.table.add(data, on_bad_vectors="null")
                    written += len(docs)
                elif policy == DuplicatePolicy.SKIP:
                    result = (
                        state.table.merge_insert("id")
                        .when_not_matched_insert_all()
                        .execute(data, on_bad_vectors="null")
                    )
                    written += int(result.num_inserted_rows)
                else:
                    (
                        state.table.merge_insert("id")
                        .when_matched_update_all()
                        .when_not_matched_insert_all()
                        .execute(data, on_bad_vectors="null")
                    )
                    written += len(docs)
                self._after_write(state)
            if policy == DuplicatePolicy.SKIP and written < len(documents):
                logger.info("Skipped {skipped} documents whose ids already exist", skipped=len(documents) - written)
        logger.debug("Wrote {count} documents to {table_name}", count=written, table_name=self.table_name)
        return written

    def delete_documents(self, document_ids: list[str]) -> None:
        """Delete the documents with these ids (unknown ids are ignored), in one commit per table holding some."""
        ids = [i for i in dict.fromkeys(document_ids) if isinstance(i, str)]
        if not ids:
            return
        with self._lock:
            states = self._tables.for_filters(None)
            for state in states:
                if len(states) == 1 or self._existing_ids(state.table, ids):
                    self._delete_ids(state.name, ids)

    # ------------------------------------------------------------------ extended operations

    def delete_all_documents(self, recreate_index: bool = False) -> None:
        """
        Delete every document.

        :param recreate_index: If `True`, drop the tables (and their indices) and create `table_name` anew with the
            current schema; otherwise delete all rows in one commit per table and keep the indices.
        """
        with self._lock:
            states = self._tables.for_filters(None)
            if not states:
                return
            if recreate_index:
                db = self._tables.connect()
                for state in states:
                    db.drop_table(state.name, ignore_missing=True)
                    self._tables.forget(state.name)
                self._tables.open(self.table_name, create=True)
                logger.info("Recreated LanceDB table {table_name}", table_name=self.table_name)
            else:
                for state in states:
                    state.table.delete("TRUE")
                    self._after_write(state)

    def delete_by_filter(self, filters: dict[str, Any]) -> int:
        """
        Delete the documents matching `filters` in one commit (per table holding some); return how many were deleted.

        :raises FilterError: if `filters` is empty or malformed (use `delete_all_documents` to delete everything).
        """
        require_filters(filters, "delete_by_filter", "delete_all_documents()")
        plan = plan_filters(filters, self._promoted)
        deleted = 0
        with self._lock:
            for state in self._tables.for_filters(filters):
                table = state.table
                if plan.residual is None:
                    where = plan.sql or "TRUE"
                else:
                    ids = matching_ids(table, plan, self.embedding_dim)
                    if not ids:
                        continue
                    where = in_list_sql("id", ids)
                before = int(table.count_rows())
                table.delete(where)
                count = before - int(table.count_rows())
                if count:
                    deleted += count
                    self._after_write(state)
        return deleted

    def replace_documents(self, filters: dict[str, Any], documents: list[Document]) -> tuple[int, int]:
        """
        Replace the documents matching `filters` with `documents`, in one commit: a reader sees either the old set or
        the new one, never a mix (a new version of a file replacing the chunks of its previous version). A
        partitioned store commits once per table involved (one, when the filter pins the partition value).

        :param filters: The documents to replace (e.g. one file's chunks); must be evaluable by LanceDB, i.e. on the
            store's indexed meta fields (`collection`, `document_id`, ...) only.
        :param documents: The new documents (every one should match `filters`); an id that exists is updated.
        :returns: (documents written, stored documents removed).
        :raises FilterError: if `filters` is empty, malformed or not evaluable by LanceDB.
        """
        require_filters(filters, "replace_documents", "delete_all_documents() and write_documents()")
        plan = plan_filters(filters, self._promoted)
        if plan.residual is None and plan.sql:
            where = plan.sql
        else:
            raise FilterError("replace_documents needs a filter on indexed meta fields only")
        documents = self._dedupe_batch(list(documents), DuplicatePolicy.OVERWRITE)
        ids = {doc.id for doc in documents}
        with self._lock:
            groups = self._grouped_by_table(documents)
            before: set[str] = set()
            for name in sorted(set(self._tables.names_for(filters)) | set(groups)):
                state = self._tables.open(name, create=name in groups)
                if state is None:
                    continue
                matching = self._matching_ids_sql(state.table, where)
                if name not in groups and not matching:
                    continue  # nothing to write or delete there: no commit
                before |= matching
                data = self._documents_to_arrow(groups.get(name, []), state)
                (
                    state.table.merge_insert("id")
                    .when_matched_update_all()
                    .when_not_matched_insert_all()
                    .when_not_matched_by_source_delete(where)
                    .execute(data, on_bad_vectors="null")
                )
                self._after_write(state)
        return len(documents), len(before - ids)

    @staticmethod
    def _matching_ids_sql(table: Any, where: str) -> set[str]:
        rows = table.search().where(where).select(["id"]).limit(None).to_arrow()
        return set(rows.column("id").to_pylist())

    def update_by_filter(self, filters: dict[str, Any], meta: dict[str, Any]) -> int:
        """
        Merge `meta` into the metadata of every document matching `filters`, in one commit (per table involved: a
        partitioned store moves a document whose partition value changes to that value's table).

        :returns: The number of updated documents.
        :raises ValueError: if `meta` is not a dict or sets a promoted field to a non-string value.
        """
        if not isinstance(meta, dict):
            raise ValueError("meta must be a dictionary")
        require_filters(filters, "update_by_filter", "a filter matching every document")
        plan = plan_filters(filters, self._promoted)
        updated: list[Document] = []
        moved: set[str] = set()
        with self._lock:
            for state in self._tables.for_filters(filters):
                rows = select_rows(state.table, plan, list(BASE_COLUMNS), self.embedding_dim)
                if rows.num_rows == 0:
                    continue
                docs = [
                    Document(
                        id=d.id,
                        content=d.content,
                        blob=d.blob,
                        meta={**d.meta, **meta},
                        embedding=d.embedding,
                        sparse_embedding=d.sparse_embedding,
                    )
                    for d in self._to_documents(rows, include_embedding=True)
                    if d.id not in moved  # moved here from a table read before
                ]
                staying = [d for d in docs if self._tables.name_of(d) == state.name]
                if staying:
                    data = self._documents_to_arrow(staying, state)
                    state.table.merge_insert("id").when_matched_update_all().execute(data, on_bad_vectors="null")
                    self._after_write(state)
                moving = [d for d in docs if self._tables.name_of(d) != state.name]
                if moving:  # to their value's table: written there, then deleted here
                    self.write_documents(moving, DuplicatePolicy.OVERWRITE)
                    self._delete_ids(state.name, [d.id for d in moving])
                    moved.update(d.id for d in moving)
                updated.extend(docs)
        return len(updated)

    def count_documents_by_filter(self, filters: dict[str, Any]) -> int:
        """Return the number of documents matching `filters`."""
        plan = plan_filters(filters, self._promoted)
        count = 0
        for state in self._tables.for_filters(filters):
            table = state.table
            if plan.residual is None:
                count += int(table.count_rows(plan.sql)) if plan.sql else int(table.count_rows())
            else:
                count += len(matching_ids(table, plan, self.embedding_dim))
        return count

    def count_unique_metadata_by_filter(self, filters: dict[str, Any], metadata_fields: list[str]) -> dict[str, int]:
        """
        Count the distinct values of each meta field among the documents matching `filters`.

        :param metadata_fields: Field names, with or without the `meta.` prefix.
        :returns: `{field name without "meta.": number of distinct non-null values}`.
        """
        return metadata.count_unique(self._matching_metas(filters), metadata_fields)

    def get_metadata_fields_info(self) -> dict[str, dict[str, str]]:
        """Return `{meta field: {"type": "keyword" | "int" | "float" | "boolean"}}` inferred from stored values."""
        return metadata.field_types(self._matching_metas(None))

    def get_metadata_field_min_max(self, metadata_field: str) -> dict[str, Any]:
        """Return `{"min": ..., "max": ...}` of a meta field (`None`s if absent or not comparable)."""
        return metadata.min_max(self._matching_metas(None), metadata_field)

    def get_metadata_field_unique_values(
        self,
        metadata_field: str,
        search_term: str | None = None,
        from_: int = 0,
        size: int = 10,
        filters: dict[str, Any] | None = None,
    ) -> tuple[list[Any], int]:
        """
        Return a page of the distinct values of a meta field and the total number of distinct values.

        :param metadata_field: Field name, with or without the `meta.` prefix.
        :param search_term: Keep only values whose string form contains this, case-insensitively.
        :param from_: Offset of the page in the sorted values.
        :param size: Page size.
        :param filters: Consider only documents matching these filters.
        """
        return metadata.unique_values(self._matching_metas(filters), metadata_field, search_term, from_, size)

    def grouped_counts(self, group_field: str, unique_fields: list[str]) -> dict[Any, dict[str, int]]:
        """
        Count the documents of every value of `group_field` and the distinct `unique_fields` in each, in one scan.

        Semantics in `components.stores.grouped_counts.GroupedCounts`. When every field is promoted (`collection`,
        `document_id` by default) the scan reads only those columns and Arrow groups them; otherwise it reads only
        `meta_json`. No document is built.
        """
        group, unique = meta_keys(group_field, unique_fields)
        states = self._tables.for_filters(None)
        if not states:
            return {}
        columns = list(dict.fromkeys([group, *unique]))
        if self._promoted.issuperset(columns):
            rows = pa.concat_tables([state.columns(columns) for state in states])
            return metadata.grouped_counts_of_columns(rows, group, unique)
        return metadata.grouped_counts(self._matching_metas(None), group, unique)

    # ------------------------------------------------------------------ retrieval

    def embedding_retrieval(
        self,
        query_embedding: list[float],
        *,
        filters: dict[str, Any] | None = None,
        top_k: int = 10,
        return_embedding: bool = False,
    ) -> list[Document]:
        """
        Return the `top_k` documents most similar to `query_embedding` (cosine), best first.

        `Document.score` is the cosine similarity (1 - cosine distance). Documents without an embedding are never
        returned.

        :raises ValueError: if the query embedding or `top_k` is invalid.
        :raises FilterError: if the filter is malformed.
        """
        query = self._validate_query_embedding(query_embedding)
        check_int(top_k, "top_k", minimum=1)
        plan = plan_filters(filters, self._promoted)
        columns = list(BASE_COLUMNS) if return_embedding else list(DOC_COLUMNS)
        found: list[list[Document]] = []
        for state in self._tables.for_filters(filters):
            table, indexes = state.table, state.indexes
            indexes.maybe_build(table, min_rows=self.vector_index_min_rows)

            def search(where: str | None, limit: int, table: Any = table, indexes: TableIndexes = indexes) -> pa.Table:
                # LanceDB never returns rows whose embedding is NULL; no `embedding IS NOT NULL` here, it is costly.
                return vector_search(
                    table,
                    query,
                    where=where,
                    limit=limit,
                    columns=columns,
                    indexed=indexes.has_vector_index,
                    nprobes=lambda: indexes.nprobes(table, self.vector_search_rows),
                )

            rows = filtered_search(table, search, plan, top_k, self.embedding_dim)
            if rows is None:
                continue
            distances = rows.column("_distance").to_pylist()
            scores: list[float | None] = [1.0 - float(d) if d is not None else None for d in distances]
            found.append(self._to_documents(rows, include_embedding=return_embedding, scores=scores))
        return _best(found, top_k)

    def bm25_retrieval(self, query: str, *, filters: dict[str, Any] | None = None, top_k: int = 10) -> list[Document]:
        """
        Return the `top_k` documents whose content best matches `query` (LanceDB full-text search, BM25), best first.

        With `keyword_meta_fields` (and a table created with them), those meta fields' values are matched too.

        The query is reduced to its word terms (punctuation, quotes and operators are ignored), any of which may
        match. `Document.score` is the full-text relevance score; its term statistics are those of the whole table
        (of each partition value's table in a partitioned store). An empty query returns `[]`.

        :raises FilterError: if the filter is malformed.
        """
        check_int(top_k, "top_k", minimum=1)
        if not isinstance(query, str):
            raise ValueError("query must be a string")
        plan = plan_filters(filters, self._promoted)
        terms = sanitize_fts_query(query)
        if not terms:
            return []
        columns = list(DOC_COLUMNS)
        found: list[list[Document]] = []
        for state in self._tables.for_filters(filters):
            table = state.table
            if table.count_rows() == 0:
                continue
            state.indexes.ensure_fts(table)

            def search(
                where: str | None, limit: int, table: Any = table, column: str = state.indexes.fts_column
            ) -> pa.Table:
                return fts_search(table, terms, where=where, limit=limit, columns=columns, column=column)

            rows = filtered_search(table, search, plan, top_k, self.embedding_dim)
            if rows is None:
                continue
            scores: list[float | None] = [float(s) for s in rows.column("_score").to_pylist()]
            found.append(self._to_documents(rows, include_embedding=False, scores=scores))
        return _best(found, top_k)

    # ------------------------------------------------------------------ maintenance

    def optimize(self) -> None:
        """
        Compact the tables' files and bring their indices up to date with the latest writes.

        New rows are added to the existing indices; the vector index is retrained instead once the table has
        doubled since this instance trained it, so that its partitions keep matching the data.
        """
        self._optimize(None)

    def _optimize(self, names: set[str] | None) -> None:
        """Compact the tables `names` (`None`: every table)."""
        with self._lock:
            if names is None:
                states = self._tables.for_filters(None)
            else:
                states = [s for s in (self._tables.open(name, create=False) for name in sorted(names)) if s is not None]
            for state in states:
                state.indexes.compact(state.table)
                logger.info("Optimized LanceDB table {table_name}", table_name=state.name)
            self._writes_since_optimize = 0
            self._tables.written.clear()
            # A long-lived handle keeps native state for every version it has seen (~0.15 MiB per write, measured by
            # bench/soak.py); reopening after each compaction lets it go. Callers mid-read keep their own reference.
            self._tables.close(keep_cache=True)

    def create_indices(self) -> None:
        """
        Build every index now: full-text (on `keyword_text`, else `content`), BTREE on `id` and the promoted meta
        columns, and, if at least 256 rows have embeddings, the vector index (rebuilt, retraining its partitions on
        the current data).
        """
        with self._lock:
            for state in self._tables.for_filters(None):
                if state.table.count_rows() > 0:
                    state.indexes.build_all(state.table)

    # ------------------------------------------------------------------ async variants

    count_documents_async = in_thread(count_documents)
    filter_documents_async = in_thread(filter_documents)
    write_documents_async = in_thread(write_documents)
    delete_documents_async = in_thread(delete_documents)
    delete_all_documents_async = in_thread(delete_all_documents)
    delete_by_filter_async = in_thread(delete_by_filter)
    update_by_filter_async = in_thread(update_by_filter)
    count_documents_by_filter_async = in_thread(count_documents_by_filter)
    count_unique_metadata_by_filter_async = in_thread(count_unique_metadata_by_filter)
    get_metadata_fields_info_async = in_thread(get_metadata_fields_info)
    get_metadata_field_min_max_async = in_thread(get_metadata_field_min_max)
    get_metadata_field_unique_values_async = in_thread(get_metadata_field_unique_values)
    grouped_counts_async = in_thread(grouped_counts)
    embedding_retrieval_async = in_thread(embedding_retrieval)
    bm25_retrieval_async = in_thread(bm25_retrieval)

    # ------------------------------------------------------------------ internals: writing and reading

    @staticmethod
    def _dedupe_batch(documents: list[Document], policy: DuplicatePolicy) -> list[Document]:
        """Resolve repeated ids inside one batch the way sequential writes would."""
        by_id: dict[str, Document] = {}
        for doc in documents:
            if doc.id in by_id:
                if policy == DuplicatePolicy.FAIL:
                    raise DuplicateDocumentError(f"ID '{doc.id}' appears more than once in the batch.")
                if policy == DuplicatePolicy.SKIP:
                    continue
                del by_id[doc.id]  # OVERWRITE: the last one wins
            by_id[doc.id] = doc
        return list(by_id.values())

    def _documents_to_arrow(self, documents: list[Document], state: OpenTable) -> pa.Table:
        """Rows for the open table `state` (with `keyword_text` if it has that column)."""
        return documents_to_arrow(
            documents,
            embedding_dim=self.embedding_dim,
            indexed_meta_fields=self.indexed_meta_fields,
            keyword_meta_fields=(self.keyword_meta_fields or []) if state.has_keyword_column else None,
        )

    def _to_documents(
        self, rows: pa.Table, *, include_embedding: bool, scores: list[float | None] | None = None
    ) -> list[Document]:
        return arrow_to_documents(
            rows, embedding_dim=self.embedding_dim, include_embedding=include_embedding, scores=scores
        )

    def _existing_ids(self, table: Any, ids: list[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(ids), ID_LOOKUP_CHUNK):
            chunk = ids[start : start + ID_LOOKUP_CHUNK]
            rows = table.search().where(in_list_sql("id", chunk)).select(["id"]).to_arrow()
            found.update(rows.column("id").to_pylist())
        return found

    def _grouped_by_table(self, documents: list[Document]) -> dict[str, list[Document]]:
        """The documents by the table they belong in (all in `table_name` unless the store is partitioned)."""
        groups: dict[str, list[Document]] = {}
        for doc in documents:
            groups.setdefault(self._tables.name_of(doc), []).append(doc)
        return groups

    def _delete_ids(self, name: str, ids: list[str]) -> None:
        """Delete the rows with these ids from table `name` (one commit)."""
        state = self._tables.open(name, create=False)
        if state is None:
            return
        for start in range(0, len(ids), ID_LOOKUP_CHUNK):
            state.table.delete(in_list_sql("id", ids[start : start + ID_LOOKUP_CHUNK]))
        self._after_write(state)

    def _after_write(self, state: OpenTable) -> None:
        self._writes_since_optimize += 1
        self._tables.written.add(state.name)
        if self.optimize_every_writes and self._writes_since_optimize >= self.optimize_every_writes:
            self._optimize(set(self._tables.written))
        state.indexes.maybe_build(state.table, min_rows=self.vector_index_min_rows)

    def _matching_metas(self, filters: dict[str, Any] | None) -> list[dict[str, Any]]:
        """Return the meta dicts of the documents matching `filters`."""
        plan = plan_filters(filters, self._promoted)
        metas: list[dict[str, Any]] = []
        for state in self._tables.for_filters(filters):
            rows = select_rows(state.table, plan, ["meta_json"], self.embedding_dim)
            metas.extend(json.loads(m) for m in rows.column("meta_json").to_pylist())
        return metas

    @property
    def _indexes(self) -> TableIndexes:
        """The indices of `table_name` (opened, or created, for this)."""
        state = self._tables.open(self.table_name, create=True)
        assert state is not None
        return state.indexes

    def _validate_query_embedding(self, query_embedding: list[float]) -> np.ndarray:
        if query_embedding is None or len(query_embedding) == 0:
            raise ValueError("query_embedding must be a non-empty list of floats")
        return checked_embedding(query_embedding, self.embedding_dim, "query_embedding")


def _best(found: list[list[Document]], top_k: int) -> list[Document]:
    """The `top_k` best-scored of several tables' results (each best first); one table's as they are."""
    if len(found) <= 1:
        return found[0] if found else []
    merged = sorted((doc for docs in found for doc in docs), key=lambda doc: -(doc.score or 0.0))
    return merged[:top_k]
