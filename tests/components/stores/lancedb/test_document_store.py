"""LanceDBDocumentStore: the Haystack document-store test suite, plus durability, filters and retrieval."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from haystack import Document
from haystack.dataclasses import ByteStream, SparseEmbedding
from haystack.document_stores.errors import DuplicateDocumentError
from haystack.document_stores.types import DocumentStore, DuplicatePolicy
from haystack.errors import FilterError
from haystack.testing.document_store import (
    CountDocumentsByFilterTest,
    CountUniqueMetadataByFilterTest,
    DocumentStoreBaseExtendedTests,
    GetMetadataFieldMinMaxTest,
    GetMetadataFieldsInfoTest,
    GetMetadataFieldUniqueValuesTest,
)
from haystack.testing.document_store_async import (
    AsyncDocumentStore,
    CountDocumentsAsyncTest,
    CountDocumentsByFilterAsyncTest,
    CountUniqueMetadataByFilterAsyncTest,
    DeleteAllAsyncTest,
    DeleteByFilterAsyncTest,
    DeleteDocumentsAsyncTest,
    FilterDocumentsAsyncTest,
    GetMetadataFieldMinMaxAsyncTest,
    GetMetadataFieldsInfoAsyncTest,
    GetMetadataFieldUniqueValuesAsyncTest,
    UpdateByFilterAsyncTest,
    WriteDocumentsAsyncTest,
)

from app.testing.grouped_counts import GroupedCountsTest, grouped_docs
from app.testing.replace_documents import ReplaceDocumentsTest
from components.stores.grouped_counts import GroupedCounts
from components.stores.lancedb import LanceDBDocumentStore
from components.stores.lancedb import document_store as lancedb_document_store
from components.stores.lancedb import tables as lancedb_tables
from components.stores.lancedb.filters import plan_filters
from components.stores.lancedb.indexes import TableIndexes
from components.stores.lancedb.search import sanitize_fts_query

PROJECT_ROOT = Path(__file__).resolve().parents[4]
SUITE_EMBEDDING_DIM = 768  # haystack.testing.document_store uses 768-d random embeddings


def _normalized(doc: Document) -> dict[str, Any]:
    """A Document as a dict, with its embedding rounded to float32 (what the store keeps)."""
    data = doc.to_dict(flatten=False)
    if data["embedding"] is not None:
        data["embedding"] = np.asarray(data["embedding"], dtype=np.float32).tolist()
    return data


def assert_same_documents(received: list[Document], expected: list[Document]) -> None:
    """
    Documents are equal up to order and float32 rounding of embeddings.

    The store keeps embeddings as float32 (the vector column type) and `filter_documents` does not promise an order,
    so the suite's exact `received == expected` is relaxed on exactly these two points.
    """
    assert len(received) == len(expected)
    assert sorted((_normalized(d) for d in received), key=lambda d: d["id"]) == sorted(
        (_normalized(d) for d in expected), key=lambda d: d["id"]
    )


class TestLanceDBDocumentStore(
    DocumentStoreBaseExtendedTests,
    CountDocumentsByFilterTest,
    CountUniqueMetadataByFilterTest,
    GetMetadataFieldsInfoTest,
    GetMetadataFieldMinMaxTest,
    GetMetadataFieldUniqueValuesTest,
):
    """Haystack's own DocumentStore test suite."""

    @pytest.fixture
    def document_store(self, tmp_path: Path) -> LanceDBDocumentStore:
        return LanceDBDocumentStore(path=str(tmp_path / "lancedb"), embedding_dim=SUITE_EMBEDDING_DIM)

    @staticmethod
    def assert_documents_are_equal(received: list[Document], expected: list[Document]) -> None:
        assert_same_documents(received, expected)

    def test_write_documents(self, document_store: DocumentStore) -> None:
        """Default policy (NONE) behaves like FAIL."""
        doc = Document(content="test doc")
        assert document_store.write_documents([doc]) == 1
        with pytest.raises(DuplicateDocumentError):
            document_store.write_documents([doc])
        self.assert_documents_are_equal(document_store.filter_documents(), [doc])


class TestLanceDBDocumentStoreAsync(
    CountDocumentsAsyncTest,
    CountDocumentsByFilterAsyncTest,
    CountUniqueMetadataByFilterAsyncTest,
    DeleteAllAsyncTest,
    DeleteByFilterAsyncTest,
    DeleteDocumentsAsyncTest,
    FilterDocumentsAsyncTest,
    GetMetadataFieldMinMaxAsyncTest,
    GetMetadataFieldsInfoAsyncTest,
    GetMetadataFieldUniqueValuesAsyncTest,
    UpdateByFilterAsyncTest,
    WriteDocumentsAsyncTest,
):
    """Haystack's async DocumentStore test suite (the `*_async` methods run the sync ones in a thread)."""

    @pytest.fixture
    def document_store(self, tmp_path: Path) -> LanceDBDocumentStore:
        return LanceDBDocumentStore(path=str(tmp_path / "lancedb"), embedding_dim=SUITE_EMBEDDING_DIM)

    @staticmethod
    def assert_documents_are_equal(received: list[Document], expected: list[Document]) -> None:
        assert_same_documents(received, expected)

    async def test_write_documents_async(self, document_store: AsyncDocumentStore) -> None:
        doc = Document(content="test doc")
        assert await document_store.write_documents_async([doc]) == 1
        with pytest.raises(DuplicateDocumentError):
            await document_store.write_documents_async([doc])
        self.assert_documents_are_equal(await document_store.filter_documents_async(), [doc])


def _partitioned_suite_store(tmp_path: Path) -> LanceDBDocumentStore:
    """A store with one table per `chapter`, the field the suites' documents vary by."""
    return LanceDBDocumentStore(
        path=str(tmp_path / "lancedb"),
        embedding_dim=SUITE_EMBEDDING_DIM,
        indexed_meta_fields=["chapter"],
        partition_field="chapter",
    )


class TestPartitionedLanceDBDocumentStore(TestLanceDBDocumentStore):
    """Haystack's DocumentStore suite on a partitioned store (partitions: test_partitions.py)."""

    @pytest.fixture
    def document_store(self, tmp_path: Path) -> LanceDBDocumentStore:
        return _partitioned_suite_store(tmp_path)


class TestPartitionedLanceDBDocumentStoreAsync(TestLanceDBDocumentStoreAsync):
    @pytest.fixture
    def document_store(self, tmp_path: Path) -> LanceDBDocumentStore:
        return _partitioned_suite_store(tmp_path)


# ---------------------------------------------------------------------------------------------------------------
# Our own behaviour

DIM = 8


def _unit(rng: np.random.Generator, dim: int = DIM) -> list[float]:
    v = rng.standard_normal(dim).astype(np.float32)
    v /= np.linalg.norm(v)
    return v.tolist()


def _c(field: str, op: str, value: Any) -> dict[str, Any]:
    return {"field": field, "operator": op, "value": value}


@pytest.fixture
def store(tmp_path: Path) -> LanceDBDocumentStore:
    return LanceDBDocumentStore(path=str(tmp_path / "db"), embedding_dim=DIM)


class TestInit:
    @pytest.mark.parametrize(
        "kwargs",
        [
            {"embedding_dim": 0},
            {"embedding_dim": -3},
            {"embedding_dim": True},
            {"table_name": ""},
            {"table_name": "   "},
            {"table_name": "bad name; DROP"},
            {"path": ""},
            {"indexed_meta_fields": ["ok", "not ok"]},
            {"indexed_meta_fields": ["id"]},
            {"indexed_meta_fields": ["content"]},
            {"indexed_meta_fields": ["meta_json"]},
            {"indexed_meta_fields": ["a", "a"]},
            {"indexed_meta_fields": ["keyword_text"]},
            {"keyword_meta_fields": "context_header"},
            {"keyword_meta_fields": [""]},
            {"vector_index_min_rows": -1},
            {"optimize_every_writes": -1},
            {"index_cache_mb": 0},
            {"metadata_cache_mb": True},
        ],
    )
    def test_invalid_arguments_raise(self, kwargs: dict[str, Any]) -> None:
        with pytest.raises(ValueError):
            LanceDBDocumentStore(**kwargs)

    def test_defaults(self) -> None:
        s = LanceDBDocumentStore()
        assert s.path == "lancedb"
        assert s.table_name == "documents"
        assert s.embedding_dim == 384
        assert s.indexed_meta_fields == ["collection", "document_id", "file_name", "acl", "tenant"]
        assert s.vector_index_min_rows == 20000
        assert s.optimize_every_writes == 20

    def test_init_opens_nothing(self, tmp_path: Path) -> None:
        path = tmp_path / "never"
        LanceDBDocumentStore(path=str(path))
        assert not path.exists()

    def test_path_set_after_init_is_used(self, tmp_path: Path) -> None:
        s = LanceDBDocumentStore(path=str(tmp_path / "first"), embedding_dim=DIM)
        s.path = str(tmp_path / "second")
        s.write_documents([Document(content="x")])
        assert (tmp_path / "second").exists()
        assert not (tmp_path / "first").exists()

    def test_relative_path_is_relative_to_cwd(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.chdir(tmp_path)
        s = LanceDBDocumentStore(path="rel_db", embedding_dim=DIM)
        s.write_documents([Document(content="x")])
        assert (tmp_path / "rel_db").is_dir()

    def test_to_dict_from_dict_round_trip(self, tmp_path: Path) -> None:
        s = LanceDBDocumentStore(
            path=str(tmp_path / "db"),
            table_name="chunks",
            embedding_dim=16,
            indexed_meta_fields=["collection", "lang"],
            keyword_meta_fields=["context_header"],
            vector_index_min_rows=500,
            vector_search_rows=1000,
            optimize_every_writes=7,
            index_cache_mb=32,
            metadata_cache_mb=8,
            reopen_after_versions=7,
            partition_field="collection",
        )
        data = s.to_dict()
        assert data == {
            "type": "components.stores.lancedb.document_store.LanceDBDocumentStore",
            "init_parameters": {
                "path": str(tmp_path / "db"),
                "table_name": "chunks",
                "embedding_dim": 16,
                "indexed_meta_fields": ["collection", "lang"],
                "keyword_meta_fields": ["context_header"],
                "vector_index_min_rows": 500,
                "vector_search_rows": 1000,
                "optimize_every_writes": 7,
                "index_cache_mb": 32,
                "metadata_cache_mb": 8,
                "reopen_after_versions": 7,
                "partition_field": "collection",
            },
        }
        restored = LanceDBDocumentStore.from_dict(data)
        assert restored.to_dict() == data

    def test_reopen_with_other_indexed_fields_raises(self, tmp_path: Path) -> None:
        LanceDBDocumentStore(path=str(tmp_path / "db"), embedding_dim=DIM).write_documents([Document(content="x")])
        other = LanceDBDocumentStore(path=str(tmp_path / "db"), embedding_dim=DIM, indexed_meta_fields=["lang"])
        with pytest.raises(ValueError, match="indexed_meta_fields"):
            other.count_documents()

    def test_reopen_with_other_dim_raises(self, tmp_path: Path) -> None:
        LanceDBDocumentStore(path=str(tmp_path / "db"), embedding_dim=DIM).write_documents([Document(content="x")])
        with pytest.raises(ValueError, match="embedding_dim"):
            LanceDBDocumentStore(path=str(tmp_path / "db"), embedding_dim=DIM * 2).count_documents()


def test_store_opened_before_fork_refuses_use_in_child(
    store: LanceDBDocumentStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.write_documents([Document(content="x")])
    real_pid = os.getpid()
    monkeypatch.setattr(os, "getpid", lambda: real_pid + 1)  # as seen from a forked child
    with pytest.raises(RuntimeError, match="fork"):
        store.count_documents()


def test_concurrent_first_use_from_threads(store: LanceDBDocumentStore) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def work(t: int) -> int:
        store.count_documents()
        return store.write_documents([Document(id=f"t{t}-{i}", content=f"thread {t} doc {i}") for i in range(5)])

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert sum(pool.map(work, range(8))) == 40
    assert store.count_documents() == 40
    assert len({d.id for d in store.filter_documents()}) == 40


class TestGroupedCounts(GroupedCountsTest):
    @pytest.fixture
    def document_store(self, store: LanceDBDocumentStore) -> LanceDBDocumentStore:
        return store

    def test_is_a_grouped_counts_store(self, store: LanceDBDocumentStore) -> None:
        assert isinstance(store, GroupedCounts)

    def test_promoted_fields_are_one_scan_of_their_columns_only(
        self, store: LanceDBDocumentStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        store.write_documents(grouped_docs())
        scans: list[tuple[list[str], str | None]] = []
        real_scan = lancedb_tables.scan

        def recorded(table: Any, columns: list[str], where: str | None) -> Any:
            scans.append((columns, where))
            return real_scan(table, columns, where)

        monkeypatch.setattr(lancedb_tables, "scan", recorded)
        monkeypatch.setattr(lancedb_document_store, "select_rows", None)  # no meta_json or full rows read
        monkeypatch.setattr(lancedb_document_store, "arrow_to_documents", None)
        expected = {"c1": {"count": 4, "document_id": 2}, "c2": {"count": 1, "document_id": 1}}
        assert store.grouped_counts("meta.collection", ["meta.document_id"]) == expected
        assert scans == [(["collection", "document_id"], None)]
        assert store.grouped_counts("meta.collection", ["meta.document_id"]) == expected
        assert len(scans) == 1  # the table did not change: its columns are not read again
        store.write_documents([Document(content="new", meta={"collection": "c2", "document_id": "x"})])
        assert store.grouped_counts("meta.collection", ["meta.document_id"])["c2"] == {"count": 2, "document_id": 2}
        assert len(scans) == 2

    def test_many_groups_across_writes(self, store: LanceDBDocumentStore) -> None:
        for batch in range(3):  # several fragments
            store.write_documents(
                [
                    Document(content=f"{batch} {n}", meta={"collection": f"c{n:03d}", "document_id": f"d{n}-{batch}"})
                    for n in range(220)
                ]
            )
        grouped = store.grouped_counts("meta.collection", ["meta.document_id"])
        assert len(grouped) == 220
        assert all(counts == {"count": 3, "document_id": 3} for counts in grouped.values())


class TestMissingTable:
    def test_reads_of_missing_table_are_empty(self, store: LanceDBDocumentStore) -> None:
        assert store.count_documents() == 0
        assert store.filter_documents() == []
        assert store.filter_documents({"field": "meta.collection", "operator": "==", "value": "a"}) == []
        assert store.count_documents_by_filter({"field": "meta.x", "operator": "==", "value": 1}) == 0
        assert store.embedding_retrieval([1.0] * DIM) == []
        assert store.bm25_retrieval("anything") == []
        assert store.delete_by_filter({"field": "meta.x", "operator": "==", "value": 1}) == 0
        assert store.grouped_counts("meta.collection", ["meta.document_id"]) == {}
        store.delete_documents(["nope"])
        store.delete_all_documents()
        store.optimize()
        store.create_indices()
        assert not Path(store.path, "documents.lance").exists()


class TestWrite:
    def test_durable_across_reopen_all_fields(self, tmp_path: Path) -> None:
        rng = np.random.default_rng(0)
        docs = [
            Document(
                id="full",
                content="Grüße, 'quoted' \"text\" \\ back\nslash",
                meta={
                    "collection": "manuals",
                    "file_name": "a.pdf",
                    "page": 3,
                    "score_hint": 0.25,
                    "flag": True,
                    "nested": {"a": [1, 2, {"b": None}]},
                    "unicode": "日本語",
                },
                embedding=_unit(rng),
                blob=ByteStream(data=b"\x00\x01binary\xff", mime_type="application/pdf", meta={"origin": "x"}),
                sparse_embedding=SparseEmbedding(indices=[1, 5, 9], values=[0.5, 0.25, 0.125]),
            ),
            Document(id="bare", content=None, meta={}),
            Document(id="empty", content="", meta={"collection": ""}),
        ]
        path = str(tmp_path / "db")
        assert LanceDBDocumentStore(path=path, embedding_dim=DIM).write_documents(docs) == 3

        reopened = LanceDBDocumentStore(path=path, embedding_dim=DIM)
        got = {d.id: d for d in reopened.filter_documents()}
        assert set(got) == {"full", "bare", "empty"}
        for doc in docs:
            # the embedding was float32-representable, so it comes back exactly
            assert got[doc.id] == doc
        assert got["full"].blob is not None and got["full"].blob.data == b"\x00\x01binary\xff"

    def test_overwrite_skip_fail(self, store: LanceDBDocumentStore) -> None:
        store.write_documents([Document(id="a", content="one"), Document(id="b", content="two")])
        with pytest.raises(DuplicateDocumentError):
            store.write_documents([Document(id="c", content="new"), Document(id="a", content="dup")])
        assert store.count_documents() == 2  # nothing of the failed batch was written
        assert (
            store.write_documents(
                [Document(id="a", content="x"), Document(id="c", content="three")], DuplicatePolicy.SKIP
            )
            == 1
        )
        assert {d.id: d.content for d in store.filter_documents()} == {"a": "one", "b": "two", "c": "three"}
        assert store.write_documents([Document(id="a", content="uno")], DuplicatePolicy.OVERWRITE) == 1
        assert {d.id: d.content for d in store.filter_documents()}["a"] == "uno"
        assert store.count_documents() == 3

    def test_duplicate_ids_in_one_batch(self, store: LanceDBDocumentStore) -> None:
        with pytest.raises(DuplicateDocumentError):
            store.write_documents([Document(id="a", content="1"), Document(id="a", content="2")])
        assert store.count_documents() == 0
        assert (
            store.write_documents([Document(id="a", content="1"), Document(id="a", content="2")], DuplicatePolicy.SKIP)
            == 1
        )
        assert store.filter_documents()[0].content == "1"
        store.write_documents([Document(id="a", content="3"), Document(id="a", content="4")], DuplicatePolicy.OVERWRITE)
        assert [d.content for d in store.filter_documents()] == ["4"]

    @pytest.mark.parametrize("value", [3, 1.5, True, ["a"], {"x": "y"}])
    def test_promoted_field_must_be_string(self, store: LanceDBDocumentStore, value: Any) -> None:
        with pytest.raises(ValueError, match="collection"):
            store.write_documents([Document(content="x", meta={"collection": value})])
        assert store.count_documents() == 0

    def test_update_by_filter_rejects_non_string_promoted_value(self, store: LanceDBDocumentStore) -> None:
        store.write_documents([Document(content="x", meta={"collection": "a"})])
        with pytest.raises(ValueError, match="collection"):
            store.update_by_filter({"field": "meta.collection", "operator": "==", "value": "a"}, {"collection": 1})
        assert store.filter_documents()[0].meta == {"collection": "a"}

    def test_update_by_filter_keeps_promoted_column_in_sync(self, store: LanceDBDocumentStore) -> None:
        store.write_documents([Document(id="1", content="x", meta={"collection": "a"}, embedding=[0.5] * DIM)])
        store.update_by_filter({"field": "id", "operator": "==", "value": "1"}, {"collection": "b"})
        assert store.count_documents_by_filter({"field": "meta.collection", "operator": "==", "value": "b"}) == 1
        assert store.count_documents_by_filter({"field": "meta.collection", "operator": "==", "value": "a"}) == 0
        assert store.filter_documents()[0].embedding == [0.5] * DIM

    @pytest.mark.parametrize(
        "embedding", [[1.0] * (DIM - 1), [1.0] * (DIM + 1), [float("nan")] * DIM, [float("inf")] + [0.0] * (DIM - 1)]
    )
    def test_bad_embedding_raises(self, store: LanceDBDocumentStore, embedding: list[float]) -> None:
        with pytest.raises(ValueError, match="embedding"):
            store.write_documents([Document(content="x", embedding=embedding)])

    def test_non_json_meta_raises(self, store: LanceDBDocumentStore) -> None:
        with pytest.raises(ValueError, match="JSON"):
            store.write_documents([Document(content="x", meta={"obj": object()})])

    def test_empty_filters_refused_for_destructive_ops(self, store: LanceDBDocumentStore) -> None:
        store.write_documents([Document(content="x")])
        with pytest.raises(FilterError):
            store.delete_by_filter({})
        with pytest.raises(FilterError):
            store.update_by_filter({}, {"a": 1})
        assert store.count_documents() == 1

    def test_optimize_and_create_indices_keep_data(self, store: LanceDBDocumentStore) -> None:
        rng = np.random.default_rng(1)
        for batch in range(3):
            store.write_documents([Document(content=f"text {batch} {i}", embedding=_unit(rng)) for i in range(100)])
        store.delete_by_filter({"field": "content", "operator": "==", "value": "text 0 0"})
        store.optimize()
        store.create_indices()
        assert store.count_documents() == 299
        assert store.bm25_retrieval("text", top_k=5)
        assert len(store.embedding_retrieval(_unit(rng), top_k=7)) == 7

    def test_auto_optimize_every_n_writes(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        s = LanceDBDocumentStore(path=str(tmp_path / "db"), embedding_dim=DIM, optimize_every_writes=3)
        calls: list[set[str] | None] = []
        original = s._optimize

        def counting(names: set[str] | None) -> None:
            calls.append(names)
            original(names)

        monkeypatch.setattr(s, "_optimize", counting)
        for i in range(7):
            s.write_documents([Document(content=f"d{i}")])
        assert calls == [{"documents"}, {"documents"}]  # the tables written since the last time
        assert s.count_documents() == 7


# ----------------------------------------------------------------------------------------------- retrieval


class TestEmbeddingRetrieval:
    def test_scores_are_cosine_and_ordered(self, store: LanceDBDocumentStore) -> None:
        rng = np.random.default_rng(2)
        docs = [Document(content=f"d{i}", embedding=_unit(rng)) for i in range(50)]
        store.write_documents(docs)
        query = rng.standard_normal(DIM).tolist()
        got = store.embedding_retrieval(query, top_k=5)
        assert len(got) == 5
        scores = [d.score or 0.0 for d in got]
        assert scores == sorted(scores, reverse=True)
        q = np.asarray(query) / np.linalg.norm(query)
        sims = {d.id: float(np.dot(q, d.embedding)) for d in docs}  # type: ignore[arg-type]
        best = sorted(sims, key=lambda i: -sims[i])[:5]
        assert [d.id for d in got] == best
        for d in got:
            assert d.score == pytest.approx(sims[d.id], abs=1e-5)
            assert d.embedding is None
        with_emb = store.embedding_retrieval(query, top_k=1, return_embedding=True)
        assert with_emb[0].embedding is not None and len(with_emb[0].embedding) == DIM

    def test_documents_without_embedding_are_excluded(self, store: LanceDBDocumentStore) -> None:
        rng = np.random.default_rng(3)
        store.write_documents(
            [Document(content=f"e{i}", embedding=_unit(rng)) for i in range(3)]
            + [Document(content=f"n{i}") for i in range(5)]
        )
        got = store.embedding_retrieval(_unit(rng), top_k=10)
        assert sorted(d.content or "" for d in got) == ["e0", "e1", "e2"]

    @pytest.mark.parametrize("bad", [[], [1.0] * (DIM + 1), [float("nan")] * DIM])
    def test_invalid_query_embedding(self, store: LanceDBDocumentStore, bad: list[float]) -> None:
        with pytest.raises(ValueError):
            store.embedding_retrieval(bad)

    @pytest.mark.parametrize("top_k", [0, -1])
    def test_invalid_top_k(self, store: LanceDBDocumentStore, top_k: int) -> None:
        with pytest.raises(ValueError):
            store.embedding_retrieval([1.0] * DIM, top_k=top_k)
        with pytest.raises(ValueError):
            store.bm25_retrieval("x", top_k=top_k)

    def test_selective_filters_return_k_rows_with_vector_index(self, tmp_path: Path) -> None:
        rng = np.random.default_rng(4)
        s = LanceDBDocumentStore(path=str(tmp_path / "db"), embedding_dim=DIM, vector_index_min_rows=300)
        docs = [
            Document(
                id=f"d{i}",
                content=f"doc {i}",
                meta={"collection": "rare" if i % 50 == 0 else "common", "n": i},
                embedding=_unit(rng),
            )
            for i in range(1500)
        ]
        for start in range(0, len(docs), 500):
            s.write_documents(docs[start : start + 500])
        assert s._indexes.has_vector_index  # built automatically past vector_index_min_rows
        # a few rows written after the index was built are found too
        late = Document(id="late", content="late", meta={"collection": "rare", "n": -1}, embedding=_unit(rng))
        s.write_documents([late])
        everything = [*docs, late]
        query = _unit(rng)
        qv = np.asarray(query)

        def exact(pred: Any, k: int) -> list[str]:
            pool = [d for d in everything if pred(d)]
            pool.sort(key=lambda d: -float(np.dot(qv, d.embedding or [])))
            return [d.id for d in pool[:k]]

        rare = s.embedding_retrieval(query, filters=_c("meta.collection", "==", "rare"), top_k=50)
        assert len(rare) == 31  # 30 + "late": every match, although fewer than top_k
        assert "late" in {d.id for d in rare}
        top = s.embedding_retrieval(query, filters=_c("meta.collection", "==", "rare"), top_k=10)
        assert len(top) == 10
        # Python-path filter, small id set (pushed down as id IN (...))
        small = s.embedding_retrieval(query, filters=_c("meta.n", "<", 5), top_k=10)
        assert [d.id for d in small] == exact(lambda d: d.meta["n"] < 5, 10)
        assert len(small) == 6
        # Python-path filter, large id set (over-fetch + Python filtering)
        big = s.embedding_retrieval(query, filters=_c("meta.n", ">=", 100), top_k=10)
        assert [d.id for d in big] == exact(lambda d: d.meta["n"] >= 100, 10)
        # mixed: SQL prefilter + Python residual
        mixed = s.embedding_retrieval(
            query,
            filters={"operator": "AND", "conditions": [_c("meta.collection", "==", "common"), _c("meta.n", ">", 1000)]},
            top_k=10,
        )
        assert [d.id for d in mixed] == exact(lambda d: d.meta["collection"] == "common" and d.meta["n"] > 1000, 10)
        scores = [d.score or 0.0 for d in mixed]
        assert scores == sorted(scores, reverse=True)
        assert s.embedding_retrieval(query, filters=_c("meta.n", ">", 10**6), top_k=10) == []

    def test_partial_probe_falls_back_to_exact(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """When probing few partitions finds fewer than top_k rows under a filter, the search is redone exactly."""
        import components.stores.lancedb.indexes as module

        monkeypatch.setattr(module, "_ROWS_PER_PARTITION", 50)  # many small partitions
        rng = np.random.default_rng(5)
        s = LanceDBDocumentStore(path=str(tmp_path / "db"), embedding_dim=DIM, vector_index_min_rows=300)
        docs = [
            Document(id=f"d{i}", meta={"collection": "rare" if i % 40 == 0 else "common"}, embedding=_unit(rng))
            for i in range(800)
        ]
        s.write_documents(docs)
        assert s._indexes.has_vector_index and s._indexes.vector_index_partitions == 16
        monkeypatch.setattr(TableIndexes, "nprobes", lambda self, table, search_rows: 1)  # as on a very big table
        query = _unit(rng)
        got = s.embedding_retrieval(query, filters=_c("meta.collection", "==", "rare"), top_k=10)
        rare = [d for d in docs if d.meta["collection"] == "rare"]
        rare.sort(key=lambda d: -float(np.dot(query, d.embedding or [])))
        assert [d.id for d in got] == [d.id for d in rare[:10]]

    def test_vector_search_rows_sets_probe_share(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        import components.stores.lancedb.indexes as module

        monkeypatch.setattr(module, "_ROWS_PER_PARTITION", 50)
        rng = np.random.default_rng(6)
        docs = [Document(id=f"d{i}", embedding=_unit(rng)) for i in range(800)]
        exact = LanceDBDocumentStore(path=str(tmp_path / "a"), embedding_dim=DIM, vector_index_min_rows=300)
        exact.write_documents(docs)
        table = exact._get_table(create=False)
        assert exact._indexes.nprobes(table, exact.vector_search_rows) >= exact._indexes.vector_index_partitions
        partial = LanceDBDocumentStore(
            path=str(tmp_path / "a"), embedding_dim=DIM, vector_index_min_rows=300, vector_search_rows=200
        )
        partial.count_documents()
        partial._indexes.vector_index_partitions = exact._indexes.vector_index_partitions
        assert partial._indexes.nprobes(table, partial.vector_search_rows) == 4  # 200 of 800 rows: 4 of 16 partitions
        with pytest.raises(ValueError, match="vector_search_rows"):
            LanceDBDocumentStore(path=str(tmp_path / "b"), vector_search_rows=0)


class TestBM25Retrieval:
    @pytest.fixture
    def fts_store(self, store: LanceDBDocumentStore) -> LanceDBDocumentStore:
        store.write_documents(
            [
                Document(id="r", content="R is a language for statistics and data frames", meta={"collection": "a"}),
                Document(id="py", content="Python is a programming language", meta={"collection": "b"}),
                Document(id="cook", content="How to cook pasta with tomato sauce", meta={"collection": "a"}),
                Document(id="none", content=None, meta={"collection": "a"}),
            ]
        )
        return store

    def test_ranks_relevant_documents(self, fts_store: LanceDBDocumentStore) -> None:
        got = fts_store.bm25_retrieval("statistics language", top_k=3)
        assert got[0].id == "r"
        assert {d.id for d in got} == {"r", "py"}
        scores = [d.score or 0.0 for d in got]
        assert all(s is not None and s > 0 for s in scores)
        assert scores == sorted(scores, reverse=True)

    def test_filters(self, fts_store: LanceDBDocumentStore) -> None:
        assert [d.id for d in fts_store.bm25_retrieval("language", filters=_c("meta.collection", "==", "b"))] == ["py"]
        got = fts_store.bm25_retrieval("language", filters=_c("content", "!=", "Python is a programming language"))
        assert [d.id for d in got] == ["r"]

    @pytest.mark.parametrize(
        "query",
        [
            'what\'s "R"? (data-frame) AND',
            '"unbalanced',
            "AND OR NOT",
            "col:value^2 ~fuzzy* [a TO b] {x}",
            '+ - && || ! ( ) { } [ ] ^ " ~ * ? : \\ /',
            "'; DROP TABLE documents; --",
            "données 日本語 العربية",
        ],
    )
    def test_special_characters_do_not_raise(self, fts_store: LanceDBDocumentStore, query: str) -> None:
        result = fts_store.bm25_retrieval(query, top_k=5)
        assert isinstance(result, list)

    def test_punctuated_query_still_finds_terms(self, fts_store: LanceDBDocumentStore) -> None:
        got = fts_store.bm25_retrieval('what\'s "R"? (data-frame) AND statistics!', top_k=1)
        assert [d.id for d in got] == ["r"]

    @pytest.mark.parametrize("query", ["", "   ", "\n\t", "?!", "___"])
    def test_empty_query_returns_nothing(self, fts_store: LanceDBDocumentStore, query: str) -> None:
        assert fts_store.bm25_retrieval(query) == []

    def test_new_rows_found_after_index_built(self, fts_store: LanceDBDocumentStore) -> None:
        assert fts_store.bm25_retrieval("pasta")  # builds the index
        fts_store.write_documents([Document(id="new", content="a fresh zucchini recipe")])
        assert [d.id for d in fts_store.bm25_retrieval("zucchini")] == ["new"]
        fts_store.write_documents([Document(id="new", content="now about eggplant")], DuplicatePolicy.OVERWRITE)
        assert fts_store.bm25_retrieval("zucchini") == []
        assert [d.id for d in fts_store.bm25_retrieval("eggplant")] == ["new"]
        fts_store.delete_documents(["cook"])
        assert fts_store.bm25_retrieval("pasta") == []

    def test_python_path_filters(self, store: LanceDBDocumentStore) -> None:
        docs = [
            Document(id=f"d{i}", content=("apple " * (1 + i % 7)) + f"filler {i}", meta={"n": i}) for i in range(1200)
        ]
        store.write_documents(docs)
        small = store.bm25_retrieval("apple", filters=_c("meta.n", "<", 3), top_k=10)  # id IN (...) pushdown
        assert sorted(d.id for d in small) == ["d0", "d1", "d2"]
        assert small[0].id == "d2"  # most occurrences of "apple"
        # 1100 matching ids: over-fetch and filter in Python
        big = store.bm25_retrieval("apple", filters=_c("meta.n", ">=", 100), top_k=20)
        assert len(big) == 20
        assert all(d.meta["n"] >= 100 for d in big)
        unfiltered = [d for d in store.bm25_retrieval("apple", top_k=1200) if d.meta["n"] >= 100][:20]
        assert [d.score for d in big] == pytest.approx([d.score for d in unfiltered])

    def test_sanitize(self) -> None:
        assert sanitize_fts_query('what\'s "R"? (data-frame) AND') == "what s R data frame AND"
        assert sanitize_fts_query("  ") == ""
        assert sanitize_fts_query(" ".join(["w"] * 100)).count("w") == 64


# ----------------------------------------------------------------------------------------------- crash consistency

_WRITER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {root!r})
    from haystack import Document
    from components.stores.lancedb.document_store import LanceDBDocumentStore

    store = LanceDBDocumentStore(path={path!r}, embedding_dim=4, optimize_every_writes=5)
    batch = 0
    while True:
        docs = [
            Document(
                id=f"b{{batch}}-{{i}}",
                content="batch %d doc %d " % (batch, i) + "x" * 200,
                meta={{"collection": "c%d" % (batch % 3), "batch": batch}},
                embedding=[float(i), 1.0, 2.0, float(batch)],
            )
            for i in range({batch_size})
        ]
        store.write_documents(docs)
        batch += 1
    """
)


@pytest.mark.integration
def test_sigkill_during_writes_leaves_whole_batches(tmp_path: Path) -> None:
    batch_size = 97
    path = str(tmp_path / "crash")
    script = _WRITER.format(root=str(PROJECT_ROOT), path=path, batch_size=batch_size)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        count = 0
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "writer died"
            if Path(path, "documents.lance").exists():
                count = LanceDBDocumentStore(path=path, embedding_dim=4).count_documents()
                if count >= 3 * batch_size:
                    break
            time.sleep(0.05)
        assert count > 0, "writer made no progress"
        time.sleep(0.137)  # land somewhere inside a later write
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stderr:
            proc.stderr.close()

    store = LanceDBDocumentStore(path=path, embedding_dim=4)
    total = store.count_documents()
    assert total > 0
    assert total % batch_size == 0
    docs = store.filter_documents()
    assert len(docs) == total
    batches: dict[int, int] = {}
    for d in docs:
        batches[d.meta["batch"]] = batches.get(d.meta["batch"], 0) + 1
    assert set(batches.values()) == {batch_size}
    assert sorted(batches) == list(range(len(batches)))
    c0 = store.filter_documents(_c("meta.collection", "==", "c0"))
    assert len(c0) == sum(n for b, n in batches.items() if b % 3 == 0)
    assert store.write_documents([Document(id="after-crash", content="still writable")]) == 1
    assert store.count_documents() == total + 1
    assert store.bm25_retrieval("writable")[0].id == "after-crash"


def test_path_expands_environment_variables(tmp_path, monkeypatch):
    monkeypatch.setenv("RAG_TEST_DATA", str(tmp_path))
    store = LanceDBDocumentStore(path="${RAG_TEST_DATA}/lancedb", embedding_dim=4)
    store.write_documents([Document(content="x", embedding=[1.0, 0.0, 0.0, 0.0])])
    assert (tmp_path / "lancedb").is_dir()
    assert store.to_dict()["init_parameters"]["path"] == "${RAG_TEST_DATA}/lancedb"


def test_unset_environment_variable_in_path_is_an_error(monkeypatch):
    monkeypatch.delenv("RAG_UNSET_VAR_XYZ", raising=False)
    store = LanceDBDocumentStore(path="${RAG_UNSET_VAR_XYZ}/lancedb", embedding_dim=4)
    with pytest.raises(ValueError, match="unset environment variable"):
        store.count_documents()


def test_concurrent_fts_index_builds_from_several_processes_do_not_fail(tmp_path):
    """Two stores (as two uvicorn workers) query a fresh table at once: both build the FTS index, neither fails."""
    import threading

    path = str(tmp_path / "db")
    LanceDBDocumentStore(path=path, embedding_dim=4).write_documents(
        [Document(content=f"statistics with R number {i}") for i in range(50)]
    )
    stores = [LanceDBDocumentStore(path=path, embedding_dim=4) for _ in range(4)]
    errors: list[BaseException] = []
    results: list[int] = []

    def query(store: LanceDBDocumentStore) -> None:
        try:
            results.append(len(store.bm25_retrieval("statistics", top_k=5)))
        except BaseException as error:  # collected for the assertion below
            errors.append(error)

    threads = [threading.Thread(target=query, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert results == [5, 5, 5, 5]


def test_the_connection_is_reopened_with_a_fresh_cache_once_the_table_moved_on(tmp_path, monkeypatch):
    """A connection keeps native memory for every table version it follows: after `reopen_after_versions` versions
    written elsewhere, the next operation opens a new connection and cache session (and still sees every row)."""
    from components.stores.lancedb import tables as module

    monkeypatch.setattr(module, "_VERSION_CHECK_S", 0.0)
    reader = LanceDBDocumentStore(path=str(tmp_path / "db"), embedding_dim=4, reopen_after_versions=3)
    writer = LanceDBDocumentStore(path=str(tmp_path / "db"), embedding_dim=4, optimize_every_writes=0)
    writer.write_documents([Document(content="first", meta={"collection": "c"})])
    assert reader.count_documents() == 1
    session = reader._tables.session
    writer.write_documents([Document(content="second", meta={"collection": "c"})])
    assert reader.count_documents() == 2 and reader._tables.session is session  # one version on: kept
    for n in range(3):
        writer.write_documents([Document(content=f"more {n}", meta={"collection": "c"})])
    assert reader.count_documents() == 5
    assert reader._tables.session is not session  # three versions past the one it opened: a fresh connection and cache
    assert LanceDBDocumentStore.from_dict(reader.to_dict()).reopen_after_versions == 3
    with pytest.raises(ValueError, match="reopen_after_versions"):
        LanceDBDocumentStore(path=str(tmp_path / "db"), reopen_after_versions=-1)


class TestKeywordMetaFields:
    """`keyword_meta_fields`: a chunk's header is found by keyword search but never shown as its passage."""

    def _docs(self) -> list[Document]:
        return [
            Document(
                id="a",
                content="Run the command as root to change the owner.",
                meta={
                    "collection": "c",
                    "context_header": "Debian Reference \u203a Filesystem permissions \u203a page 35",
                },
                embedding=[1.0, 0.0, 0.0, 0.0],
            ),
            Document(id="b", content="Bananas are yellow.", meta={"collection": "c"}, embedding=[0.0, 1.0, 0.0, 0.0]),
        ]

    def test_header_is_searchable_by_keyword_but_not_in_the_passage(self, tmp_path: Path) -> None:
        s = LanceDBDocumentStore(path=str(tmp_path / "db"), embedding_dim=4, keyword_meta_fields=["context_header"])
        s.write_documents(self._docs())
        hits = s.bm25_retrieval("filesystem permissions")
        assert [d.id for d in hits] == ["a"]
        assert hits[0].content == "Run the command as root to change the owner."
        assert hits[0].meta["context_header"].startswith("Debian Reference")
        assert [d.id for d in s.bm25_retrieval("owner")] == ["a"]  # the content is still indexed
        assert [d.id for d in s.bm25_retrieval("bananas", filters=_c("meta.collection", "==", "c"))] == ["b"]
        assert all("keyword_text" not in d.meta for d in s.filter_documents())
        dense = s.embedding_retrieval([1.0, 0.0, 0.0, 0.0], top_k=1)
        assert dense[0].content == "Run the command as root to change the owner."

    def test_without_the_option_the_header_is_not_keyword_indexed(self, tmp_path: Path) -> None:
        s = LanceDBDocumentStore(path=str(tmp_path / "db"), embedding_dim=4)
        s.write_documents(self._docs())
        assert s.bm25_retrieval("filesystem permissions") == []

    def test_update_by_filter_reindexes_the_header(self, tmp_path: Path) -> None:
        s = LanceDBDocumentStore(path=str(tmp_path / "db"), embedding_dim=4, keyword_meta_fields=["context_header"])
        s.write_documents(self._docs())
        s.update_by_filter(_c("id", "==", "b"), {"context_header": "Fruit guide \u203a Tropical"})
        assert [d.id for d in s.bm25_retrieval("tropical")] == ["b"]

    def test_an_old_table_gets_the_column_and_keeps_working(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        old = LanceDBDocumentStore(path=str(tmp_path / "db"), embedding_dim=4)
        old.write_documents(self._docs()[:1])
        assert old.bm25_retrieval("owner")  # an FTS index on content exists
        new = LanceDBDocumentStore(path=str(tmp_path / "db"), embedding_dim=4, keyword_meta_fields=["context_header"])
        new.write_documents(
            [*self._docs()[1:], Document(id="c", content="Later chunk.", meta={"context_header": "Zoo"})]
        )
        assert "keyword_text" in caplog.text
        assert new.count_documents() == 3
        assert {d.id for d in new.bm25_retrieval("bananas owner")} == {"a", "b"}
        assert new.bm25_retrieval("filesystem") == []  # stored before: indexed by its content only
        assert [d.id for d in new.bm25_retrieval("zoo")] == ["c"]  # written after: with its header
        assert [d.id for d in old.bm25_retrieval("owner")] == ["a"]  # a store without the option still reads it
        # and a store without the option opens a table that has the column, and keeps it filled
        LanceDBDocumentStore(
            path=str(tmp_path / "db2"), embedding_dim=4, keyword_meta_fields=["context_header"]
        ).write_documents(self._docs()[:1])
        plain = LanceDBDocumentStore(path=str(tmp_path / "db2"), embedding_dim=4)
        plain.write_documents(self._docs()[1:])
        assert [d.id for d in plain.bm25_retrieval("bananas")] == ["b"]
        assert [d.id for d in plain.bm25_retrieval("filesystem")] == ["a"]


class TestPromotedColumnsAddedOnOpen:
    """A table created before `acl` and `tenant` were promoted gets the columns when opened, filled from the stored
    meta, and the read filter (`acl` in [...] or missing) is evaluated in SQL on it."""

    READ = {
        "operator": "OR",
        "conditions": [_c("meta.acl", "in", ["public", "acl_eng"]), _c("meta.acl", "==", None)],
    }

    def test_an_old_table_gets_the_columns_filled_and_filters_in_sql(self, tmp_path: Path) -> None:
        path = str(tmp_path / "db")
        old = LanceDBDocumentStore(path=path, embedding_dim=4, indexed_meta_fields=["collection"])
        old.write_documents(
            [
                Document(id="legacy", content="no acl", embedding=[1, 0, 0, 0], meta={"collection": "c"}),
                Document(id="eng", content="eng", embedding=[0, 1, 0, 0], meta={"collection": "c", "acl": "acl_eng"}),
                Document(id="hr", content="hr", embedding=[0, 0, 1, 0], meta={"collection": "c", "acl": "acl_hr"}),
            ]
        )
        new = LanceDBDocumentStore(path=path, embedding_dim=4, indexed_meta_fields=["collection", "acl", "tenant"])
        assert plan_filters(self.READ, new._promoted).residual is None  # all SQL
        assert sorted(d.id for d in new.filter_documents(self.READ)) == ["eng", "legacy"]
        hits = new.embedding_retrieval([0, 0, 1, 0], filters=self.READ, top_k=10)
        assert sorted(d.id for d in hits) == ["eng", "legacy"]  # top_k above the readable set: still never hr
        assert new.count_documents_by_filter(self.READ) == 2
        new.update_by_filter(_c("id", "==", "hr"), {"acl": "acl_eng"})
        assert new.count_documents_by_filter(self.READ) == 3
        columns = new._get_table(create=False).to_arrow().to_pydict()
        assert dict(zip(columns["id"], columns["acl"], strict=True)) == {
            "legacy": None,
            "eng": "acl_eng",
            "hr": "acl_eng",
        }


class TestReplaceDocuments(ReplaceDocumentsTest):
    @pytest.fixture
    def document_store(self, tmp_path: Path) -> LanceDBDocumentStore:
        return LanceDBDocumentStore(path=str(tmp_path / "lancedb"), embedding_dim=SUITE_EMBEDDING_DIM)

    def test_replace_documents_needs_a_filter_lancedb_evaluates(self, document_store: LanceDBDocumentStore) -> None:
        with pytest.raises(FilterError):
            document_store.replace_documents({"field": "meta.version", "operator": "==", "value": 1}, [])
