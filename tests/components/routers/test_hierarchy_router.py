"""HierarchyRouter: leaves to be embedded, parents only stored."""

from __future__ import annotations

from haystack import Document, Pipeline
from haystack.components.preprocessors import HierarchicalDocumentSplitter

from components.routers.hierarchy_router import HierarchyRouter, is_parent


def test_routes_the_blocks_of_a_hierarchy() -> None:
    text = " ".join(f"word{i}" for i in range(40))
    blocks = HierarchicalDocumentSplitter(block_sizes={20, 5}, split_by="word").run([Document(content=text)])
    routed = HierarchyRouter().run(documents=blocks["documents"])
    assert len(routed["parents"]) == 3  # the root and its two 20-word blocks
    assert len(routed["leaves"]) == 8
    assert all(is_parent(doc) for doc in routed["parents"]) and not any(is_parent(d) for d in routed["leaves"])
    assert all(doc.meta["__level"] == 2 for doc in routed["leaves"])


def test_documents_of_other_splitters_are_leaves() -> None:
    docs = [Document(content="a"), Document(content="b", meta={"__children_ids": []})]
    routed = HierarchyRouter().run(documents=docs)
    assert routed == {"leaves": docs, "parents": []}


def test_in_yaml_pipeline() -> None:
    pipe = Pipeline.loads(
        "components:\n  h:\n    type: components.routers.hierarchy_router.HierarchyRouter\n"
        "    init_parameters: {}\nconnections: []\n",
        allowed_modules=["components"],
    )
    out = pipe.run({"h": {"documents": [Document(content="x", meta={"__children_ids": ["c"]})]}})
    assert [doc.content for doc in out["h"]["parents"]] == ["x"]
