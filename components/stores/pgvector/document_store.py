"""pgvector-haystack's `PgvectorDocumentStore`, made safe for a multi-threaded server.

The upstream store keeps one connection and one shared cursor per instance: two threads (FastAPI runs pipelines in a
thread pool) would interleave their results on that cursor. This subclass keeps every query of the upstream store
as it is and changes how connections are obtained:

* a `psycopg_pool.ConnectionPool` (bounded, health-checked on checkout, reconnecting in the background); each public
  store call borrows one connection for its duration, bound to the calling thread;
* connection failures (PostgreSQL restarting, network blips) are retried with exponential backoff and jitter, then
  raised as `StoreUnavailableError`, which the service maps to HTTP 503; `statement_timeout` bounds every query;
* every pooled connection sets `hnsw.iterative_scan`, so filtered HNSW queries still return `top_k` rows;
* keyword retrieval reads a stored, GIN-indexed `tsvector` column (no per-row re-parsing when ranking) and by default
  matches *any* query term (`keyword_match: any`), as BM25 does; upstream `plainto_tsquery` requires all terms,
  which natural-language questions rarely satisfy; with `keyword_meta_fields` (a chunk's contextual header) that
  column also covers those meta fields, and leaves out the parents of `HierarchicalDocumentSplitter`;
* expression indexes on `meta->>'collection'`, `meta->>'acl'` and `meta->>'tenant'` keep the collection scope and
  the callers' read filter (`app.services.visibility`) cheap prefilters;
* `grouped_counts` (`components.stores.grouped_counts`) counts every collection in one `GROUP BY` query;
* an existing table whose vector column has another dimension than `embedding_dimension` is a clear error.

The async API runs the sync implementation in a worker thread (`components.stores.async_methods.in_thread`, as the
LanceDB store does), so both share the pool.
"""

from __future__ import annotations

import functools
import random
import threading
import time
from collections.abc import Callable
from typing import Any, Literal, TypeVar, cast

import psycopg
from haystack import Document, logging
from haystack.core.errors import DeserializationError
from haystack.core.serialization import import_class_by_name
from haystack.document_stores.errors import DocumentStoreError
from haystack.document_stores.types import DuplicatePolicy
from haystack.errors import FilterError
from haystack.utils import Secret
from haystack_integrations.document_stores.pgvector import PgvectorDocumentStore
from haystack_integrations.document_stores.pgvector.filters import _convert_filters_to_where_clause_and_params
from pgvector.psycopg import register_vector
from psycopg import Connection
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row
from psycopg.sql import SQL, Composed, Identifier
from psycopg.sql import Literal as SQLLiteral
from psycopg_pool import ConnectionPool, PoolTimeout

from components.stores.async_methods import in_thread
from components.stores.grouped_counts import meta_keys
from components.validation import check_int

_INDEXED_META = ("collection", "acl", "tenant")  # btree expression indexes on `meta->>'<field>'`
logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

TSV_COLUMN = "content_tsv"
ITERATIVE_SCAN_MODES = ("off", "relaxed_order", "strict_order")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS {schema_name}.{table_name} (
id VARCHAR(128) PRIMARY KEY,
embedding {embedding_col_type}({embedding_dimension}),
content TEXT,
blob_data BYTEA,
blob_meta JSONB,
blob_mime_type VARCHAR(255),
meta JSONB,
content_tsv tsvector GENERATED ALWAYS AS ({tsv_expression}) STORED)
"""

# any term (OR): the question's own lexemes, re-joined with `or` for websearch_to_tsquery (never a syntax error)
_KEYWORD_ANY = """
SELECT {table_name}.*, ts_rank_cd(content_tsv, query) AS score
FROM {schema_name}.{table_name},
  websearch_to_tsquery({language}::regconfig,
    array_to_string(tsvector_to_array(to_tsvector({language}::regconfig, %s)), ' or ')) query
WHERE content_tsv @@ query
"""
_KEYWORD_ALL = """
SELECT {table_name}.*, ts_rank_cd(content_tsv, query) AS score
FROM {schema_name}.{table_name}, plainto_tsquery({language}::regconfig, %s) query
WHERE content_tsv @@ query
"""


def tsv_expression(language: str, keyword_meta_fields: list[str] | None) -> Composed:
    """The generated `content_tsv` expression: the content's lexemes or, with `keyword_meta_fields`, those fields'
    and the content's, none for a parent of `HierarchicalDocumentSplitter` (non-empty meta `__children_ids`)."""
    if keyword_meta_fields is None:
        return SQL("to_tsvector({}::regconfig, coalesce(content, ''))").format(SQLLiteral(language))
    parts = [SQL("coalesce(meta->>{}, '')").format(SQLLiteral(field)) for field in keyword_meta_fields]
    text = SQL(" || ' ' || ").join([*parts, SQL("coalesce(content, '')")])
    return SQL(
        "CASE WHEN coalesce(meta->'__children_ids', '[]'::jsonb) IN ('[]'::jsonb, 'null'::jsonb) "
        "THEN to_tsvector({language}::regconfig, {text}) END"
    ).format(language=SQLLiteral(language), text=text)


class StoreUnavailableError(DocumentStoreError):
    """The database cannot be reached (after retries): the request may succeed later (HTTP 503)."""


def _is_connection_problem(error: BaseException) -> bool:
    """True for failures of the connection itself, not of the SQL (those are not retried)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, PoolTimeout | psycopg.OperationalError | psycopg.InterfaceError):
            return True
        seen = seen.__cause__
    return False


def _without_tsv(result: Any) -> Any:
    """Upstream reads rows with `SELECT *`, so the tsvector column would land in `Document.meta`: drop it."""
    if isinstance(result, list):
        for item in result:
            if isinstance(item, Document):
                item.meta.pop(TSV_COLUMN, None)
    return result


def _pooled(method: F) -> F:
    """Run `method` with a connection borrowed from the pool, retrying connection failures."""

    @functools.wraps(method)
    def wrapper(self: PooledPgvectorDocumentStore, *args: Any, **kwargs: Any) -> Any:
        if getattr(self._local, "connection", None) is not None:  # nested call: already holds a connection
            return method(self, *args, **kwargs)
        attempts = self.retries + 1
        for attempt in range(1, attempts + 1):
            try:
                with self._get_pool().connection(timeout=self.pool_timeout) as connection:
                    self._bind(connection)
                    try:
                        return _without_tsv(method(self, *args, **kwargs))
                    finally:
                        self._bind(None)
            except (DocumentStoreError, psycopg.Error, PoolTimeout) as error:
                if not _is_connection_problem(error):
                    raise
                if attempt == attempts:
                    raise StoreUnavailableError(
                        f"PostgreSQL is unreachable ({type(error).__name__}) after {attempts} attempts"
                    ) from error
                delay = min(self.retry_max_delay, self.retry_initial_delay * 2 ** (attempt - 1))
                delay *= 0.5 + random.random() / 2
                logger.warning(
                    "PostgreSQL call {method} failed ({error}); retry {attempt}/{retries} in {delay:.2f} s",
                    method=method.__name__,
                    error=type(error).__name__,
                    attempt=attempt,
                    retries=self.retries,
                    delay=delay,
                )
                time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    return cast(F, wrapper)


class PooledPgvectorDocumentStore(PgvectorDocumentStore):
    """`PgvectorDocumentStore` with a connection pool, retries, iterative HNSW scans and any-term keyword search."""

    def __init__(
        self,
        *,
        connection_string: Secret = Secret.from_env_var("PG_CONN_STR"),  # noqa: B008 - the Haystack idiom
        create_extension: bool = True,
        schema_name: str = "public",
        table_name: str = "haystack_documents",
        language: str = "english",
        embedding_dimension: int = 768,
        vector_type: Literal["vector", "halfvec"] = "vector",
        vector_function: Literal["cosine_similarity", "inner_product", "l2_distance"] = "cosine_similarity",
        recreate_table: bool = False,
        search_strategy: Literal["exact_nearest_neighbor", "hnsw"] = "exact_nearest_neighbor",
        hnsw_recreate_index_if_exists: bool = False,
        hnsw_index_creation_kwargs: dict[str, int] | None = None,
        hnsw_index_name: str = "haystack_hnsw_index",
        hnsw_ef_search: int | None = None,
        hnsw_iterative_scan: str = "relaxed_order",
        keyword_index_name: str = "haystack_keyword_index",
        keyword_match: Literal["any", "all"] = "any",
        keyword_meta_fields: list[str] | None = None,
        pool_min_size: int = 1,
        pool_max_size: int = 8,
        pool_timeout: float = 5.0,
        connect_timeout: int = 5,
        statement_timeout_ms: int = 30_000,
        retries: int = 2,
        retry_initial_delay: float = 0.2,
        retry_max_delay: float = 2.0,
    ) -> None:
        """
        Create the store; nothing connects until the first call.

        Upstream parameters are documented on `PgvectorDocumentStore`. Added here:

        :param hnsw_iterative_scan: `relaxed_order` (default), `strict_order` or `off`: lets a filtered HNSW query scan
            further until it has `top_k` rows (pgvector >= 0.8).
        :param keyword_match: `any` ranks chunks containing any query term; `all` requires every term (upstream).
        :param keyword_meta_fields: Meta fields whose values are keyword-indexed with the content (e.g.
            `[context_header]`); the passage returned is still the content alone. Applies to tables this store creates;
            an existing table keeps the `content_tsv` it was created with (a warning says so): recreate it, or use a new
            `table_name`, to index the fields.
        :param pool_min_size: Connections kept open.
        :param pool_max_size: Upper bound on open connections (size it to the server's thread pool).
        :param pool_timeout: Seconds to wait for a pooled connection before the call fails.
        :param connect_timeout: Seconds to wait for PostgreSQL to accept a new connection.
        :param statement_timeout_ms: Server-side limit for any one statement.
        :param retries: Retries of a call that failed because of the connection (not because of its SQL).
        :param retry_initial_delay: First backoff delay in seconds, doubled per retry, with jitter.
        :param retry_max_delay: Upper bound of one backoff delay in seconds.
        """
        PgvectorDocumentStore.__init__(
            self,
            connection_string=connection_string,
            create_extension=create_extension,
            schema_name=schema_name,
            table_name=table_name,
            language=language,
            embedding_dimension=embedding_dimension,
            vector_type=vector_type,
            vector_function=vector_function,
            recreate_table=recreate_table,
            search_strategy=search_strategy,
            hnsw_recreate_index_if_exists=hnsw_recreate_index_if_exists,
            hnsw_index_creation_kwargs=hnsw_index_creation_kwargs,
            hnsw_index_name=hnsw_index_name,
            hnsw_ef_search=hnsw_ef_search,
            keyword_index_name=keyword_index_name,
        )
        if hnsw_iterative_scan not in ITERATIVE_SCAN_MODES:
            raise ValueError(f"hnsw_iterative_scan must be one of {ITERATIVE_SCAN_MODES}, got {hnsw_iterative_scan!r}")
        if keyword_match not in ("any", "all"):
            raise ValueError(f"keyword_match must be 'any' or 'all', got {keyword_match!r}")
        if keyword_meta_fields is not None and (
            not isinstance(keyword_meta_fields, list)
            or not all(isinstance(field, str) and field for field in keyword_meta_fields)
        ):
            raise ValueError("keyword_meta_fields must be a list of meta field names (or None)")
        check_int(pool_min_size, "pool_min_size", minimum=1)
        check_int(pool_max_size, "pool_max_size", minimum=pool_min_size)
        check_int(connect_timeout, "connect_timeout", minimum=1)
        check_int(statement_timeout_ms, "statement_timeout_ms", minimum=1)
        check_int(retries, "retries", minimum=0)
        for name, value in (
            ("pool_timeout", pool_timeout),
            ("retry_initial_delay", retry_initial_delay),
            ("retry_max_delay", retry_max_delay),
        ):
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        self.hnsw_iterative_scan = hnsw_iterative_scan
        self.keyword_match = keyword_match
        self.keyword_meta_fields = None if keyword_meta_fields is None else list(keyword_meta_fields)
        self.pool_min_size = pool_min_size
        self.pool_max_size = pool_max_size
        self.pool_timeout = pool_timeout
        self.connect_timeout = connect_timeout
        self.statement_timeout_ms = statement_timeout_ms
        self.retries = retries
        self.retry_initial_delay = retry_initial_delay
        self.retry_max_delay = retry_max_delay
        self._pool: ConnectionPool | None = None
        self._pool_lock = threading.Lock()
        self._init_lock = threading.Lock()
        self._initializing = False

    # The upstream code reads `self._connection`/`self._cursor`/`self._dict_cursor`: make them per-thread.
    @property
    def _local(self) -> threading.local:
        local = self.__dict__.get("_thread_local")
        if local is None:
            local = self.__dict__.setdefault("_thread_local", threading.local())
        return cast(threading.local, local)

    @property
    def _connection(self) -> Connection | None:
        return getattr(self._local, "connection", None)

    @_connection.setter
    def _connection(self, value: Connection | None) -> None:
        self._local.connection = value

    @property
    def _cursor(self) -> Any:
        return getattr(self._local, "cursor", None)

    @_cursor.setter
    def _cursor(self, value: Any) -> None:
        self._local.cursor = value

    @property
    def _dict_cursor(self) -> Any:
        return getattr(self._local, "dict_cursor", None)

    @_dict_cursor.setter
    def _dict_cursor(self, value: Any) -> None:
        self._local.dict_cursor = value

    def _bind(self, connection: Connection | None) -> None:
        self._connection = connection
        self._cursor = connection.cursor() if connection is not None else None
        self._dict_cursor = connection.cursor(row_factory=dict_row) if connection is not None else None

    def to_dict(self) -> dict[str, Any]:
        """Serialize with the pool settings."""
        data = PgvectorDocumentStore.to_dict(self)
        data["init_parameters"].update(
            hnsw_iterative_scan=self.hnsw_iterative_scan,
            keyword_match=self.keyword_match,
            keyword_meta_fields=self.keyword_meta_fields,
            pool_min_size=self.pool_min_size,
            pool_max_size=self.pool_max_size,
            pool_timeout=self.pool_timeout,
            connect_timeout=self.connect_timeout,
            statement_timeout_ms=self.statement_timeout_ms,
            retries=self.retries,
            retry_initial_delay=self.retry_initial_delay,
            retry_max_delay=self.retry_max_delay,
        )
        return data

    def _configure(self, connection: Connection) -> None:
        """Run once per new pooled connection."""
        connection.autocommit = True
        installed = connection.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone()
        if self.create_extension and not installed:
            try:
                connection.execute("CREATE EXTENSION IF NOT EXISTS vector")
            except psycopg.errors.UniqueViolation:  # another pooled connection created it at the same moment
                pass
        register_vector(connection)
        connection.execute(SQL("SET hnsw.iterative_scan = {}").format(SQLLiteral(self.hnsw_iterative_scan)))
        if self.hnsw_ef_search:
            connection.execute(SQL("SET hnsw.ef_search = {}").format(SQLLiteral(self.hnsw_ef_search)))

    def _get_pool(self) -> ConnectionPool:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ConnectionPool(
                    self.connection_string.resolve_value() or "",
                    min_size=self.pool_min_size,
                    max_size=self.pool_max_size,
                    timeout=self.pool_timeout,
                    kwargs={
                        "connect_timeout": self.connect_timeout,
                        "options": f"-c statement_timeout={int(self.statement_timeout_ms)}",
                    },
                    configure=self._configure,
                    check=ConnectionPool.check_connection,
                    reconnect_timeout=60.0,
                    name=f"pgvector-{self.table_name}",
                    open=False,
                )
                self._pool.open(wait=False)
            return self._pool

    def _ensure_db_setup(self) -> None:
        """The pooled wrapper has bound a connection; create the table and indexes once per process."""
        if self._connection is None:
            raise DocumentStoreError("internal: store used outside a pooled call")
        if self._table_initialized or self._initializing:
            return
        with self._init_lock:
            if self._table_initialized:
                return
            self._initializing = True
            try:
                self._initialize_table()
                self._initialize_extras()
            finally:
                self._initializing = False

    def _build_table_creation_queries(self) -> tuple[SQL, Composed, SQL, Composed]:
        """Upstream's table plus a stored tsvector column; the keyword GIN index covers that column."""
        sql_table_exists, _, sql_keyword_index_exists, _ = PgvectorDocumentStore._build_table_creation_queries(self)
        create_table = SQL(_CREATE_TABLE).format(
            schema_name=Identifier(self.schema_name),
            table_name=Identifier(self.table_name),
            embedding_dimension=SQLLiteral(self.embedding_dimension),
            embedding_col_type=SQL(self.vector_type),
            tsv_expression=tsv_expression(self.language, self.keyword_meta_fields),
        )
        create_keyword_index = SQL("CREATE INDEX IF NOT EXISTS {index} ON {schema}.{table} USING GIN ({tsv})").format(
            index=Identifier(self.keyword_index_name),
            schema=Identifier(self.schema_name),
            table=Identifier(self.table_name),
            tsv=Identifier(TSV_COLUMN),
        )
        return sql_table_exists, create_table, sql_keyword_index_exists, create_keyword_index

    def _initialize_extras(self) -> None:
        assert self._cursor is not None
        table = SQL("{}.{}").format(Identifier(self.schema_name), Identifier(self.table_name))
        row = self._execute_sql(
            cursor=self._cursor,
            sql_query=SQL(
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = {}::regclass AND attname = 'embedding'"
            ).format(SQLLiteral(f'"{self.schema_name}"."{self.table_name}"')),
            error_msg="Could not read the embedding column type",
        ).fetchone()
        expected = f"{self.vector_type}({self.embedding_dimension})"
        if row is not None and row[0] != expected:
            self._table_initialized = False
            raise DocumentStoreError(
                f"Table {self.schema_name}.{self.table_name} stores embeddings as {row[0]} but the pipeline's store "
                f"declares {expected} (embedding_dimension in the YAML): use a table created for this embedder "
                "(another table_name) or drop the old one"
            )
        self._execute_sql(
            cursor=self._cursor,
            sql_query=SQL(
                "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {tsv} tsvector GENERATED ALWAYS AS ({expression}) STORED"
            ).format(
                table=table,
                tsv=Identifier(TSV_COLUMN),
                expression=tsv_expression(self.language, self.keyword_meta_fields),
            ),
            error_msg="Could not add the tsvector column",
        )
        if self.keyword_meta_fields:
            generated = self._execute_sql(
                cursor=self._cursor,
                sql_query=SQL(
                    "SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d JOIN pg_attribute a "
                    "ON a.attrelid = d.adrelid AND a.attnum = d.adnum WHERE d.adrelid = {}::regclass AND a.attname = {}"
                ).format(SQLLiteral(f'"{self.schema_name}"."{self.table_name}"'), SQLLiteral(TSV_COLUMN)),
                error_msg="Could not read the tsvector column's expression",
            ).fetchone()
            if generated is not None and not all(
                f"'{field}'" in str(generated[0]) for field in self.keyword_meta_fields
            ):
                logger.warning(
                    "Table {table} was created without keyword_meta_fields {fields}: keyword search covers the content "
                    "only; recreate it, or use a new table_name, to index them",
                    table=self.table_name,
                    fields=self.keyword_meta_fields,
                )
        for field in _INDEXED_META:
            self._execute_sql(
                cursor=self._cursor,
                sql_query=SQL("CREATE INDEX IF NOT EXISTS {index} ON {table} ((meta->>{field}))").format(
                    index=Identifier(f"{self.table_name}_{field}_idx"), table=table, field=SQLLiteral(field)
                ),
                error_msg=f"Could not create the {field} index",
            )

    def _build_keyword_retrieval_query(
        self, query: str, top_k: int, filters: dict[str, Any] | None = None
    ) -> tuple[Composed, tuple]:
        select = SQL(_KEYWORD_ANY if self.keyword_match == "any" else _KEYWORD_ALL).format(
            schema_name=Identifier(self.schema_name),
            table_name=Identifier(self.table_name),
            language=SQLLiteral(self.language),
        )
        where: Composed | SQL = SQL("")
        where_params: tuple = ()
        if filters:  # same translation as upstream: appended to the query's own WHERE with AND
            where, where_params = _convert_filters_to_where_clause_and_params(filters=filters, operator="AND")
        order = SQL(" ORDER BY score DESC LIMIT {top_k}").format(top_k=SQLLiteral(top_k))
        return select + where + order, where_params

    def write_documents(self, documents: list[Document], policy: DuplicatePolicy = DuplicatePolicy.NONE) -> int:
        """Upstream's write, in one transaction: a batch is stored completely or not at all (and commits once).

        An empty batch writes nothing (upstream would fail with psycopg's "no result available").
        """
        if not documents:
            return 0
        return self._write_documents(documents, policy)

    @_pooled
    def _write_documents(self, documents: list[Document], policy: DuplicatePolicy) -> int:
        connection = self._connection
        assert connection is not None
        connection.execute("BEGIN")
        try:
            written = PgvectorDocumentStore.write_documents(self, documents, policy)
        except BaseException:
            if connection.info.transaction_status != TransactionStatus.IDLE:  # upstream may have rolled back
                connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
        return written

    def replace_documents(self, filters: dict[str, Any], documents: list[Document]) -> tuple[int, int]:
        """Replace the documents matching `filters` with `documents` in one transaction: a reader sees either the old
        set or the new one, never a mix (a new version of a file replacing its previous version's chunks).

        :returns: (documents written, stored documents removed).
        :raises FilterError: if `filters` is empty.
        """
        if not filters:
            raise FilterError("replace_documents requires a non-empty filter")
        return self._replace_documents(filters, list(documents))

    @_pooled
    def _replace_documents(self, filters: dict[str, Any], documents: list[Document]) -> tuple[int, int]:
        connection = self._connection
        assert connection is not None
        self._ensure_db_setup()
        where, params = _convert_filters_to_where_clause_and_params(filters)
        table = SQL("{schema}.{table}").format(schema=Identifier(self.schema_name), table=Identifier(self.table_name))
        connection.execute("BEGIN")
        try:
            rows = connection.execute(
                SQL("DELETE FROM {table}").format(table=table) + where + SQL(" RETURNING id"), params
            ).fetchall()
            written = (
                PgvectorDocumentStore.write_documents(self, documents, DuplicatePolicy.OVERWRITE) if documents else 0
            )
        except BaseException:
            if connection.info.transaction_status != TransactionStatus.IDLE:
                connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
        removed = {row[0] for row in rows} - {doc.id for doc in documents}
        return written, len(removed)

    @_pooled
    def delete_table(self) -> None:
        """Drop the table (even one whose vector dimension does not match this store's)."""
        self._initializing = True
        try:
            PgvectorDocumentStore.delete_table(self)
        finally:
            self._initializing = False
            self._table_initialized = False

    @_pooled
    def grouped_counts(self, group_field: str, unique_fields: list[str]) -> dict[Any, dict[str, int]]:
        """
        Count the documents of every value of `group_field` and the distinct `unique_fields` in each, in one query.

        Semantics in `components.stores.grouped_counts.GroupedCounts`; one `SELECT meta->>'x', count(*),
        count(DISTINCT meta->>'y') ... GROUP BY 1`. Group values are the fields' text (`meta->>'x'`).
        """
        group, unique = meta_keys(group_field, unique_fields)
        group = PgvectorDocumentStore._normalize_metadata_field_name(group)
        unique = [PgvectorDocumentStore._normalize_metadata_field_name(field) for field in unique]
        query = SQL(
            "SELECT meta->>{group}, count(*){distinct} FROM {schema}.{table} "
            "WHERE meta->>{group} IS NOT NULL GROUP BY 1"
        ).format(
            group=SQLLiteral(group),
            distinct=SQL("").join(SQL(", count(DISTINCT meta->>{})").format(SQLLiteral(field)) for field in unique),
            schema=Identifier(self.schema_name),
            table=Identifier(self.table_name),
        )
        self._ensure_db_setup()
        assert self._cursor is not None
        rows = self._execute_sql(
            cursor=self._cursor, sql_query=query, error_msg="Could not count the groups in PgvectorDocumentStore"
        ).fetchall()
        return {
            row[0]: {"count": int(row[1]), **{field: int(n) for field, n in zip(unique, row[2:], strict=True)}}
            for row in rows
        }

    # Every upstream call that touches the database borrows one pooled connection.
    count_documents = _pooled(PgvectorDocumentStore.count_documents)
    filter_documents = _pooled(PgvectorDocumentStore.filter_documents)
    delete_documents = _pooled(PgvectorDocumentStore.delete_documents)
    delete_all_documents = _pooled(PgvectorDocumentStore.delete_all_documents)
    delete_by_filter = _pooled(PgvectorDocumentStore.delete_by_filter)
    update_by_filter = _pooled(PgvectorDocumentStore.update_by_filter)
    count_documents_by_filter = _pooled(PgvectorDocumentStore.count_documents_by_filter)
    count_unique_metadata_by_filter = _pooled(PgvectorDocumentStore.count_unique_metadata_by_filter)
    get_metadata_fields_info = _pooled(PgvectorDocumentStore.get_metadata_fields_info)
    get_metadata_field_min_max = _pooled(PgvectorDocumentStore.get_metadata_field_min_max)
    get_metadata_field_unique_values = _pooled(PgvectorDocumentStore.get_metadata_field_unique_values)
    _keyword_retrieval = _pooled(PgvectorDocumentStore._keyword_retrieval)
    _embedding_retrieval = _pooled(PgvectorDocumentStore._embedding_retrieval)

    # The async API: the same pooled calls, in a worker thread (upstream's own async connection is never opened).
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
    delete_table_async = in_thread(delete_table)
    _keyword_retrieval_async = in_thread(_keyword_retrieval)
    _embedding_retrieval_async = in_thread(_embedding_retrieval)

    def close(self) -> None:
        """Close the pool (idempotent)."""
        with self._pool_lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None


def pgvector_store_from_dict(data: dict[str, Any]) -> PgvectorDocumentStore:
    """Deserialize a `PgvectorDocumentStore` or subclass named by `type` (upstream retrievers hard-code the base)."""
    type_name = data.get("type", "")
    store_cls = import_class_by_name(type_name) if type_name else PooledPgvectorDocumentStore
    if not (isinstance(store_cls, type) and issubclass(store_cls, PgvectorDocumentStore)):
        raise DeserializationError(f"{type_name} is not a PgvectorDocumentStore")
    return store_cls.from_dict(data)
