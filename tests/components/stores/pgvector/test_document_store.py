"""PooledPgvectorDocumentStore against the real PostgreSQL + pgvector of scripts/postgres.sh."""

import threading
import uuid
from copy import deepcopy

import pytest
from haystack import Document, Pipeline
from haystack.document_stores.errors import DocumentStoreError
from haystack.testing.document_store import (
    CountDocumentsByFilterTest,
    CountDocumentsTest,
    CountUniqueMetadataByFilterTest,
    DeleteAllTest,
    DeleteByFilterTest,
    DeleteDocumentsTest,
    FilterableDocsFixtureMixin,
    GetMetadataFieldUniqueValuesTest,
    UpdateByFilterTest,
)
from haystack.utils import Secret

from app.testing.grouped_counts import GroupedCountsTest, grouped_docs
from app.testing.replace_documents import ReplaceDocumentsTest
from components.retrievers.pgvector.embedding_retriever import PooledPgvectorEmbeddingRetriever
from components.retrievers.pgvector.keyword_retriever import PooledPgvectorKeywordRetriever
from components.stores.grouped_counts import GroupedCounts
from components.stores.pgvector.document_store import PooledPgvectorDocumentStore, StoreUnavailableError

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


def _store(dsn: str, **kwargs) -> PooledPgvectorDocumentStore:
    table = kwargs.pop("table_name", f"t_{uuid.uuid4().hex[:12]}")
    params = {
        "embedding_dimension": 768,
        "search_strategy": "hnsw",
        "hnsw_index_name": f"{table}_hnsw",
        "keyword_index_name": f"{table}_tsv",
        **kwargs,
    }
    return PooledPgvectorDocumentStore(connection_string=Secret.from_token(dsn), table_name=table, **params)


class TestHaystackDocumentStoreContract(
    CountDocumentsTest,
    DeleteDocumentsTest,
    DeleteAllTest,
    DeleteByFilterTest,
    UpdateByFilterTest,
    CountDocumentsByFilterTest,
    CountUniqueMetadataByFilterTest,
    GetMetadataFieldUniqueValuesTest,
    FilterableDocsFixtureMixin,
):
    """Haystack's own store tests for every store method the services call. `FilterDocumentsTest` is left out:
    its None/NOT cases test pgvector-haystack's filter translation, which this subclass does not change."""

    @pytest.fixture
    def document_store(self, pg_dsn):
        store = _store(pg_dsn)
        yield store
        store.delete_table()
        store.close()

    @pytest.mark.xfail(strict=True, reason="pgvector-haystack 8.1.2 upstream: mixed-type values of one field")
    def test_get_metadata_field_unique_values_distinct_types(self, document_store):
        GetMetadataFieldUniqueValuesTest.test_get_metadata_field_unique_values_distinct_types(self, document_store)


@pytest.fixture
def store(pg_dsn):
    instance = _store(pg_dsn, embedding_dimension=3)
    yield instance
    instance.delete_table()
    instance.close()


def _docs():
    return [
        Document(
            id="a",
            content="Installing packages from source with R CMD INSTALL",
            embedding=[1.0, 0.0, 0.0],
            meta={"collection": "c1", "page": 3},
        ),
        Document(
            id="b",
            content="Plotting graphics and saving them as PDF",
            embedding=[0.0, 1.0, 0.0],
            meta={"collection": "c1"},
        ),
        Document(
            id="c", content="Reading a package's data files", embedding=[0.9, 0.1, 0.0], meta={"collection": "c2"}
        ),
    ]


class TestGroupedCounts(GroupedCountsTest):
    @pytest.fixture
    def document_store(self, store):
        return store

    def test_is_a_grouped_counts_store(self, store):
        assert isinstance(store, GroupedCounts)

    def test_one_group_by_query(self, store, monkeypatch):
        store.write_documents(grouped_docs())
        queries: list[str] = []
        real = PooledPgvectorDocumentStore._execute_sql

        def recorded(self, cursor, sql_query, params=None, error_msg=""):
            queries.append(sql_query.as_string(cursor))
            return real(self, cursor, sql_query, params, error_msg)

        monkeypatch.setattr(PooledPgvectorDocumentStore, "_execute_sql", recorded)
        assert store.grouped_counts("meta.collection", ["meta.document_id"]) == {
            "c1": {"count": 4, "document_id": 2},
            "c2": {"count": 1, "document_id": 1},
        }
        assert len(queries) == 1 and queries[0].endswith("GROUP BY 1"), queries
        assert "count(DISTINCT meta->>'document_id')" in queries[0]

    def test_field_names_are_checked_never_spliced(self, store):
        store.write_documents(grouped_docs())
        with pytest.raises(ValueError, match="Invalid metadata field name"):
            store.grouped_counts("meta.collection') OR 1=1 --", [])
        with pytest.raises(ValueError, match="Invalid metadata field name"):
            store.grouped_counts("meta.collection", ["document_id'"])


def test_an_empty_batch_writes_nothing(store):
    assert store.write_documents([]) == 0
    assert store.count_documents() == 0


def test_init_validates_early():
    for bad in (
        {"hnsw_iterative_scan": "sometimes"},
        {"keyword_match": "most"},
        {"keyword_meta_fields": "context_header"},
        {"pool_min_size": 5, "pool_max_size": 2},
        {"pool_timeout": 0},
        {"retries": -1},
    ):
        with pytest.raises(ValueError):
            PooledPgvectorDocumentStore(**bad)


def test_to_dict_from_dict_round_trip(monkeypatch):
    monkeypatch.setenv("PG_CONN_STR", "postgresql://x@127.0.0.1/db")
    store = PooledPgvectorDocumentStore(
        table_name="t", embedding_dimension=384, pool_max_size=4, keyword_match="all", keyword_meta_fields=["h"]
    )
    data = store.to_dict()
    assert data["type"] == "components.stores.pgvector.document_store.PooledPgvectorDocumentStore"
    assert data["init_parameters"]["connection_string"] == {
        "type": "env_var",
        "env_vars": ["PG_CONN_STR"],
        "strict": True,
    }
    again = PooledPgvectorDocumentStore.from_dict(deepcopy(data))
    assert again.to_dict() == data
    assert (again.pool_max_size, again.keyword_match, again.keyword_meta_fields) == (4, "all", ["h"])


def test_keyword_search_matches_any_term_and_hides_the_tsvector(store):
    store.write_documents(_docs())
    retriever = PooledPgvectorKeywordRetriever(document_store=store)
    found = retriever.run(query="How do I install a package?")["documents"]
    assert {d.id for d in found} == {"a", "c"}  # neither contains every term; both contain one
    assert all("content_tsv" not in d.meta for d in found)
    assert all("content_tsv" not in d.meta for d in store.filter_documents())
    store_all = _store(
        store.connection_string.resolve_value(), embedding_dimension=3, table_name=store.table_name, keyword_match="all"
    )
    try:
        assert PooledPgvectorKeywordRetriever(document_store=store_all).run(query="install package")["documents"]
        assert not PooledPgvectorKeywordRetriever(document_store=store_all).run(query="install a package from CRAN")[
            "documents"
        ]
    finally:
        store_all.close()


def test_filtered_hnsw_query_returns_k_rows_in_scope(store):
    many = [
        Document(
            id=f"x{i}",
            content=f"chunk {i}",
            embedding=[1.0, i / 100, 0.0],
            meta={"collection": "big" if i % 20 else "small"},
        )
        for i in range(400)
    ]
    store.write_documents(many)
    scope = {"field": "meta.collection", "operator": "==", "value": "small"}
    found = PooledPgvectorEmbeddingRetriever(document_store=store, top_k=10).run(
        query_embedding=[1.0, 0.0, 0.0], filters=scope
    )["documents"]
    assert len(found) == 10  # hnsw.iterative_scan: the 5 % in scope are still found
    assert {d.meta["collection"] for d in found} == {"small"}


def test_dimension_mismatch_is_a_clear_error(store):
    store.write_documents(_docs())
    other = _store(store.connection_string.resolve_value(), embedding_dimension=384, table_name=store.table_name)
    try:
        with pytest.raises(DocumentStoreError, match=r"vector\(3\).*vector\(384\)"):
            other.count_documents()
    finally:
        other.close()


def test_concurrent_threads_get_their_own_results(store):
    store.write_documents(_docs())
    retriever = PooledPgvectorEmbeddingRetriever(document_store=store, top_k=1)
    wrong: list[str] = []

    def ask(vector, expected):
        for _ in range(30):
            got = retriever.run(query_embedding=vector)["documents"][0].id
            if got != expected:
                wrong.append(got)

    threads = [
        threading.Thread(target=ask, args=(v, e)) for v, e in [([1.0, 0.0, 0.0], "a"), ([0.0, 1.0, 0.0], "b")] * 4
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []


def test_unreachable_database_raises_store_unavailable_after_retries():
    store = _store("postgresql://rag:rag@127.0.0.1:9/rag", pool_timeout=0.3, retries=2, retry_initial_delay=0.01)
    try:
        with pytest.raises(StoreUnavailableError, match="after 3 attempts"):
            store.count_documents()
    finally:
        store.close()


def test_async_api_shares_the_pool(store):
    import asyncio

    store.write_documents(_docs())
    assert asyncio.run(store.count_documents_async()) == 3


def test_retrievers_in_a_yaml_pipeline(store, monkeypatch):
    monkeypatch.setenv("PG_CONN_STR", store.connection_string.resolve_value())
    store.write_documents(_docs())
    yaml_text = f"""
components:
  keyword_retriever:
    type: components.retrievers.pgvector.keyword_retriever.PooledPgvectorKeywordRetriever
    init_parameters:
      top_k: 2
      document_store:
        type: components.stores.pgvector.document_store.PooledPgvectorDocumentStore
        init_parameters:
          connection_string: {{type: env_var, env_vars: [PG_CONN_STR], strict: true}}
          table_name: {store.table_name}
          embedding_dimension: 3
connections: []
"""
    pipeline = Pipeline.loads(yaml_text, allowed_modules=["components"])
    retriever = pipeline.get_component("keyword_retriever")
    assert type(retriever.document_store) is PooledPgvectorDocumentStore
    result = pipeline.run(
        {
            "keyword_retriever": {
                "query": "plotting graphics",
                "filters": {"field": "meta.collection", "operator": "==", "value": "c1"},
            }
        }
    )
    assert [d.id for d in result["keyword_retriever"]["documents"]] == ["b"]
    retriever.document_store.close()


def test_embedding_retriever_takes_an_immutable_query_embedding(store):
    from components.embedders.query_embedding import QueryEmbedding

    store.write_documents(_docs())
    retriever = PooledPgvectorEmbeddingRetriever(document_store=store, top_k=3)

    as_list = retriever.run(query_embedding=[0.0, 1.0, 0.0])["documents"]
    immutable = retriever.run(query_embedding=QueryEmbedding([0.0, 1.0, 0.0]))["documents"]

    assert [(d.id, d.score) for d in immutable] == [(d.id, d.score) for d in as_list]
    assert immutable[0].id == "b"


def _headed_docs():
    return [
        Document(
            id="h",
            content="Run the command as root to change the owner.",
            embedding=[1.0, 0.0, 0.0],
            meta={
                "collection": "c1",
                "context_header": "Debian Reference \u203a Filesystem permissions \u203a page 35",
            },
        ),
        Document(id="y", content="Bananas are yellow.", embedding=[0.0, 1.0, 0.0], meta={"collection": "c1"}),
        Document(
            id="p",
            content="Filesystem permissions: the parent block of a hierarchy.",
            meta={"collection": "c1", "__children_ids": ["h"], "__level": 1},
        ),
    ]


def test_keyword_meta_fields_are_searchable_but_not_in_the_passage(pg_dsn):
    store = _store(pg_dsn, embedding_dimension=3, keyword_meta_fields=["context_header"])
    try:
        store.write_documents(_headed_docs())
        retriever = PooledPgvectorKeywordRetriever(document_store=store)
        found = retriever.run(query="filesystem permissions")["documents"]
        assert [d.id for d in found] == ["h"]  # the hierarchy parent "p" is never a keyword hit
        assert found[0].content == "Run the command as root to change the owner."
        assert [d.id for d in retriever.run(query="bananas")["documents"]] == ["y"]
    finally:
        store.delete_table()
        store.close()


def test_a_table_created_without_keyword_meta_fields_still_works(store, caplog):
    store.write_documents(_headed_docs()[:2])
    newer = _store(
        store.connection_string.resolve_value(),
        embedding_dimension=3,
        table_name=store.table_name,
        keyword_meta_fields=["context_header"],
    )
    try:
        retriever = PooledPgvectorKeywordRetriever(document_store=newer)
        assert [d.id for d in retriever.run(query="bananas")["documents"]] == ["y"]
        assert retriever.run(query="filesystem")["documents"] == []  # the old column indexes the content only
        assert "keyword_meta_fields" in caplog.text
    finally:
        newer.close()


class TestReplaceDocuments(ReplaceDocumentsTest):
    @pytest.fixture
    def document_store(self, pg_dsn):
        store = _store(pg_dsn)
        yield store
        store.delete_table()
        store.close()
