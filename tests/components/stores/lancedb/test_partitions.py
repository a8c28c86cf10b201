"""A LanceDB store partitioned by collection: one table per value, keyword statistics per collection."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lancedb
import numpy as np
import pytest
from haystack import Document
from haystack.document_stores.errors import DuplicateDocumentError
from haystack.document_stores.types import DuplicatePolicy

from app.testing.grouped_counts import GroupedCountsTest
from app.testing.replace_documents import ReplaceDocumentsTest
from components.stores.lancedb import LanceDBDocumentStore
from components.stores.lancedb.partitions import is_partition_table, partition_table_name, pinned_values

DIM = 4
SUITE_EMBEDDING_DIM = 768  # haystack.testing.document_store uses 768-d random embeddings


def _c(field: str, op: str, value: Any) -> dict[str, Any]:
    return {"field": field, "operator": op, "value": value}


def _store(path: Path, **kwargs: Any) -> LanceDBDocumentStore:
    return LanceDBDocumentStore(path=str(path), embedding_dim=DIM, partition_field="collection", **kwargs)


def _tables(path: Path) -> set[str]:
    return set(lancedb.connect(str(path)).list_tables().tables)


def _doc(content: str, collection: str | None, **meta: Any) -> Document:
    return Document(content=content, meta={"collection": collection, **meta}, embedding=[1.0, 0.0, 0.0, 0.0])


# ---------------------------------------------------------------------------------------------- the naming rules


def test_a_collection_name_is_its_table_suffix_and_any_other_value_is_hashed() -> None:
    assert partition_table_name("chunks", "manuals-2_x") == "chunks__c_manuals-2_x"
    assert partition_table_name("chunks", None) == "chunks"
    hashed = partition_table_name("chunks", "two words/é")
    assert hashed.startswith("chunks__h_") and len(hashed) == len("chunks__h_") + 32
    assert hashed != partition_table_name("chunks", "two words/e")
    assert is_partition_table("chunks", "chunks__c_a") and is_partition_table("chunks", hashed)
    assert not is_partition_table("chunks", "chunks") and not is_partition_table("chunks", "other__c_a")


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (None, None),
        (_c("meta.collection", "==", "a"), {"a"}),
        (_c("meta.collection", "==", None), {None}),
        (_c("meta.collection", "in", ["a", "b"]), {"a", "b"}),
        (_c("meta.collection", "!=", "a"), None),
        (_c("meta.other", "==", "a"), None),
        ({"operator": "AND", "conditions": [_c("meta.acl", "==", "x"), _c("meta.collection", "==", "a")]}, {"a"}),
        (
            {
                "operator": "AND",
                "conditions": [_c("meta.collection", "in", ["a", "b"]), _c("meta.collection", "in", ["b", "c"])],
            },
            {"b"},
        ),
        (
            {"operator": "OR", "conditions": [_c("meta.collection", "==", "a"), _c("meta.collection", "==", "b")]},
            {"a", "b"},
        ),
        ({"operator": "OR", "conditions": [_c("meta.collection", "==", "a"), _c("meta.acl", "==", "b")]}, None),
        ({"operator": "NOT", "conditions": [_c("meta.collection", "==", "a")]}, None),
    ],
)
def test_pinned_values(filters: dict[str, Any] | None, expected: set[Any] | None) -> None:
    assert pinned_values(filters, "collection") == expected


def test_the_partition_field_must_be_an_indexed_meta_field(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="partition_field"):
        LanceDBDocumentStore(path=str(tmp_path), partition_field="lang")


# ---------------------------------------------------------------------------------------------- what it is for


def _keyword_score(store: LanceDBDocumentStore) -> float:
    [hit] = store.bm25_retrieval("zebra", filters=_c("meta.collection", "==", "a"), top_k=1)
    assert hit.score is not None
    return hit.score


@pytest.mark.parametrize("partitioned", [True, False])
def test_keyword_scores_of_a_collection_do_not_depend_on_the_others(tmp_path: Path, partitioned: bool) -> None:
    store = LanceDBDocumentStore(
        path=str(tmp_path), embedding_dim=DIM, partition_field="collection" if partitioned else None
    )
    store.write_documents([_doc("the zebra grazes", "a"), _doc("the lion sleeps", "a"), _doc("a quiet day", "a")])
    alone = _keyword_score(store)
    store.write_documents([_doc(f"zebra number {n}", "b") for n in range(20)])  # another collection's documents
    store.optimize()
    if partitioned:
        assert _keyword_score(store) == pytest.approx(alone)
    else:  # one table: the other collection's documents make the term common, and the score drops
        assert _keyword_score(store) < alone * 0.8


def test_each_collection_has_its_table_and_unfiltered_reads_see_them_all(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.write_documents([_doc("alpha one", "a"), _doc("alpha two", "b"), _doc("alpha three", None)])
    assert _tables(tmp_path) == {"documents", "documents__c_a", "documents__c_b"}
    assert store.count_documents() == 3
    assert len(store.filter_documents()) == 3
    assert [d.content for d in store.filter_documents(_c("meta.collection", "==", "b"))] == ["alpha two"]
    assert store.count_documents_by_filter(_c("meta.collection", "in", ["a", "b"])) == 2
    assert store.count_documents_by_filter(_c("meta.collection", "==", "missing")) == 0
    assert len(store.bm25_retrieval("alpha", top_k=2)) == 2  # the best of every table
    hits = store.bm25_retrieval("alpha", top_k=5)
    assert [h.score for h in hits] == sorted((h.score or 0.0 for h in hits), reverse=True)
    assert len(store.embedding_retrieval([1.0, 0.0, 0.0, 0.0], top_k=3)) == 3
    assert store.grouped_counts("meta.collection", []) == {"a": {"count": 1}, "b": {"count": 1}}  # no None group
    assert store.delete_by_filter(_c("meta.collection", "==", "a")) == 1
    assert store.count_documents() == 2
    store.delete_all_documents(recreate_index=True)
    assert _tables(tmp_path) == {"documents"} and store.count_documents() == 0


def test_a_single_table_store_is_moved_into_partitions_when_opened_partitioned(tmp_path: Path) -> None:
    LanceDBDocumentStore(path=str(tmp_path), embedding_dim=DIM).write_documents(
        [_doc("alpha one", "a"), _doc("alpha two", "a"), _doc("beta", "b"), _doc("loose", None)]
    )
    store = _store(tmp_path)
    # a pinned read is the first operation: the rows must already be in their tables
    assert store.count_documents_by_filter(_c("meta.collection", "==", "a")) == 2
    assert _tables(tmp_path) == {"documents", "documents__c_a", "documents__c_b"}
    assert [d.content for d in LanceDBDocumentStore(path=str(tmp_path), embedding_dim=DIM).filter_documents()] == [
        "loose"
    ]  # the base table keeps only the documents without a collection
    assert store.count_documents() == 4
    assert [d.content for d in store.bm25_retrieval("beta", filters=_c("meta.collection", "==", "b"))] == ["beta"]


def test_a_document_that_changes_collection_moves_to_its_table(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.write_documents([_doc("alpha", "a", document_id="d1"), _doc("beta", "a", document_id="d2")])
    store.write_documents([_doc("gamma", "b", document_id="d3")])
    # d1 is moved from a's table into b's, which is read after a's: it is updated once
    assert store.update_by_filter(_c("meta.document_id", "in", ["d1", "d3"]), {"collection": "b"}) == 2
    assert sorted(d.meta["document_id"] for d in store.filter_documents(_c("meta.collection", "==", "b"))) == [
        "d1",
        "d3",
    ]
    assert store.count_documents() == 3
    store.delete_documents([store.filter_documents(_c("meta.document_id", "==", "d1"))[0].id, "unknown"])
    assert store.count_documents() == 2


def test_an_id_is_unique_within_its_collection_table(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.write_documents([Document(id="fixed", content="gamma", meta={"collection": "a"})])
    with pytest.raises(DuplicateDocumentError):
        store.write_documents([Document(id="fixed", content="other", meta={"collection": "a"})])
    assert (
        store.write_documents([Document(id="fixed", content="other", meta={"collection": "a"})], DuplicatePolicy.SKIP)
        == 0
    )
    # another collection is another table, as another index would be: Haystack's default ids hash the meta anyway
    assert store.write_documents([Document(id="fixed", content="gamma", meta={"collection": "b"})]) == 1
    assert sorted(d.meta["collection"] for d in store.filter_documents(_c("id", "==", "fixed"))) == ["a", "b"]


def test_replace_documents_of_one_collection_touches_its_table_only(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.write_documents([_doc("old", "a", document_id="d"), _doc("other", "b", document_id="d")])
    versions = {name: lancedb.connect(str(tmp_path)).open_table(name).version for name in _tables(tmp_path)}
    filters = {"operator": "AND", "conditions": [_c("meta.collection", "==", "a"), _c("meta.document_id", "==", "d")]}
    assert store.replace_documents(filters, [_doc("new", "a", document_id="d")]) == (1, 1)
    assert sorted(d.content for d in store.filter_documents()) == ["new", "other"]
    after = {name: lancedb.connect(str(tmp_path)).open_table(name).version for name in _tables(tmp_path)}
    assert [name for name in after if after[name] != versions.get(name)] == ["documents__c_a"]
    store.write_documents([_doc("solo", "c", document_id="e")])
    versions = {name: lancedb.connect(str(tmp_path)).open_table(name).version for name in _tables(tmp_path)}
    # a filter that does not name the collection: only the tables holding a match or a new document commit
    assert store.replace_documents(_c("meta.document_id", "==", "e"), [_doc("solo 2", "c", document_id="e")]) == (1, 1)
    after = {name: lancedb.connect(str(tmp_path)).open_table(name).version for name in _tables(tmp_path)}
    assert [name for name in after if after[name] != versions.get(name)] == ["documents__c_c"]


def test_embedding_retrieval_merges_the_tables_by_score(tmp_path: Path) -> None:
    store = _store(tmp_path)
    rng = np.random.default_rng(3)
    docs = []
    for n in range(12):
        vector = rng.standard_normal(DIM)
        docs.append(
            Document(content=f"d{n}", meta={"collection": f"c{n % 3}"}, embedding=list(vector / np.linalg.norm(vector)))
        )
    store.write_documents(docs)
    query = [1.0, 0.0, 0.0, 0.0]
    single = LanceDBDocumentStore(path=str(tmp_path / "single"), embedding_dim=DIM)
    single.write_documents(docs)
    assert [d.id for d in store.embedding_retrieval(query, top_k=5)] == [
        d.id for d in single.embedding_retrieval(query, top_k=5)
    ]


def test_the_connection_is_reopened_once_the_tables_together_moved_on(tmp_path: Path, monkeypatch) -> None:
    """The native memory a connection keeps grows with the versions of every table it follows: the versions the
    collections' tables moved since they were opened count together."""
    from components.stores.lancedb import tables as module

    monkeypatch.setattr(module, "_VERSION_CHECK_S", 0.0)
    reader = _store(tmp_path, reopen_after_versions=4)
    writer = _store(tmp_path, optimize_every_writes=0)
    writer.write_documents([_doc("first a", "a"), _doc("first b", "b")])
    a, b = _c("meta.collection", "==", "a"), _c("meta.collection", "==", "b")
    assert reader.count_documents_by_filter(a) == 1 and reader.count_documents_by_filter(b) == 1
    session = reader._tables.session
    for n, (collection, where) in enumerate([("a", a), ("b", b), ("a", a), ("b", b)]):
        assert reader._tables.session is session  # the tables moved n versions together so far
        writer.write_documents([_doc(f"more {n}", collection)])
        assert reader.count_documents_by_filter(where) == 2 + n // 2
    assert reader._tables.session is not session  # a's 2 + b's 2: a fresh connection and cache
    assert reader.count_documents() == 6


# ---------------------------------------------------------------------------------------------- the suites, partitioned
# (Haystack's DocumentStore suites on a partitioned store are in test_document_store.py, beside the plain ones)


class TestPartitionedGroupedCounts(GroupedCountsTest):
    @pytest.fixture
    def document_store(self, tmp_path: Path) -> LanceDBDocumentStore:
        return LanceDBDocumentStore(path=str(tmp_path), embedding_dim=DIM, partition_field="collection")


class TestPartitionedReplaceDocuments(ReplaceDocumentsTest):
    @pytest.fixture
    def document_store(self, tmp_path: Path) -> LanceDBDocumentStore:
        return LanceDBDocumentStore(path=str(tmp_path), embedding_dim=SUITE_EMBEDDING_DIM, partition_field="collection")
