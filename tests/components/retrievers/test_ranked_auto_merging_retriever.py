"""RankedAutoMergingRetriever on a LanceDB store holding a hierarchy: parents replace leaves, in rank order."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from haystack import Document
from haystack.components.preprocessors import HierarchicalDocumentSplitter
from haystack.core.serialization import component_from_dict, component_to_dict

from components.retrievers.ranked_auto_merging_retriever import RankedAutoMergingRetriever
from components.routers.hierarchy_router import HierarchyRouter
from components.stores.lancedb import LanceDBDocumentStore

TEXT = " ".join(f"w{i}" for i in range(24))  # 2 parents of 12 words, each with 3 leaves of 4 words


@pytest.fixture
def hierarchy(tmp_path: Path) -> tuple[LanceDBDocumentStore, list[Document], list[Document]]:
    store = LanceDBDocumentStore(path=str(tmp_path / "db"), embedding_dim=2, keyword_meta_fields=[])
    blocks = HierarchicalDocumentSplitter(block_sizes={12, 4}, split_by="word").run(
        [Document(content=TEXT, meta={"file_name": "f.txt"})]
    )["documents"]
    routed = HierarchyRouter().run(documents=blocks)
    leaves = [
        Document(id=d.id, content=d.content, meta=d.meta, embedding=[1.0, float(i)])
        for i, d in enumerate(routed["leaves"])
    ]
    store.write_documents(leaves + routed["parents"])
    return store, leaves, routed["parents"]


def _scored(leaves: list[Document], indexes: list[int]) -> list[Document]:
    return [
        Document(id=leaves[i].id, content=leaves[i].content, meta=leaves[i].meta, score=1.0 - n / 10)
        for n, i in enumerate(indexes)
    ]


def test_parent_takes_the_place_and_score_of_its_best_child(hierarchy) -> None:
    store, leaves, parents = hierarchy
    first_parent = next(p for p in parents if p.meta["__level"] == 1 and leaves[0].id in p.meta["__children_ids"])
    other = Document(id="csv-row", content="a row", meta={"file_name": "t.csv"}, score=0.95)
    retrieved = _scored(leaves, [4, 0, 1, 2])  # leaf 4 (second parent) first, then all of the first parent's
    retrieved.insert(1, other)
    out = RankedAutoMergingRetriever(document_store=store, threshold=0.5).run(documents=retrieved)["documents"]
    assert [doc.id for doc in out] == [leaves[4].id, "csv-row", first_parent.id]
    assert out[2].content == first_parent.content and out[2].score == pytest.approx(0.9)


def test_below_the_threshold_nothing_merges_and_nothing_without_parents_fails(hierarchy) -> None:
    store, leaves, _ = hierarchy
    retrieved = _scored(leaves, [3, 0])
    merger = RankedAutoMergingRetriever(document_store=store, threshold=0.5)
    assert [doc.id for doc in merger.run(documents=retrieved)["documents"]] == [leaves[3].id, leaves[0].id]
    plain = [Document(content="no hierarchy", score=0.3)]
    assert merger.run(documents=plain)["documents"] == plain
    assert (
        asyncio.run(merger.run_async(documents=retrieved))["documents"] == merger.run(documents=retrieved)["documents"]
    )


def test_parents_are_never_search_hits(hierarchy) -> None:
    store, leaves, parents = hierarchy
    assert {d.id for d in store.bm25_retrieval("w5 w6 w7 w13", top_k=20)} <= {d.id for d in leaves}
    assert {d.id for d in store.embedding_retrieval([1.0, 0.5], top_k=20)} == {d.id for d in leaves}
    assert store.count_documents() == len(leaves) + len(parents)


def test_round_trips_and_validates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAYSTACK_DESERIALIZATION_ALLOWLIST", "components")  # as the pipeline loader allows
    store = LanceDBDocumentStore(path=str(tmp_path / "db"), embedding_dim=2)
    merger = RankedAutoMergingRetriever(document_store=store, threshold=0.6)
    data = component_to_dict(merger, "merger")
    restored = component_from_dict(RankedAutoMergingRetriever, data, "merger")
    assert component_to_dict(restored, "merger") == data
    for threshold in (0, 1.0, -0.5):
        with pytest.raises(ValueError):
            RankedAutoMergingRetriever(document_store=store, threshold=threshold)
