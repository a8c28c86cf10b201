"""`GroupedCountsTest`: the contract of `components.stores.grouped_counts.GroupedCounts`, for every store.

A store's test module subclasses it (as with Haystack's `haystack.testing.document_store` mixins) and provides a
`document_store` fixture: an empty store whose embeddings (if any are needed) are optional.
"""

from __future__ import annotations

from typing import Any

import pytest
from haystack import Document


def grouped_docs() -> list[Document]:
    """Two collections (`c1`: 3 chunks of 2 documents plus one chunk without a document id; `c2`: 1), and chunks
    outside every collection (no `collection` key, `None` in it)."""
    return [
        Document(id="1", content="one", meta={"collection": "c1", "document_id": "d1", "tag": "x"}),
        Document(id="2", content="two", meta={"collection": "c1", "document_id": "d1", "tag": "y"}),
        Document(id="3", content="three", meta={"collection": "c1", "document_id": "d2"}),
        Document(id="4", content="four", meta={"collection": "c1"}),
        Document(id="5", content="five", meta={"collection": "c2", "document_id": "d3", "tag": "x"}),
        Document(id="6", content="six", meta={"document_id": "d4", "tag": "y"}),
        Document(id="7", content="seven", meta={"collection": None, "document_id": "d5"}),
    ]


class GroupedCountsTest:
    """`grouped_counts(group_field, unique_fields)`: one answer for every group, equal to per-group counting."""

    def test_grouped_counts_per_collection(self, document_store: Any) -> None:
        document_store.write_documents(grouped_docs())
        assert document_store.grouped_counts("meta.collection", ["meta.document_id"]) == {
            "c1": {"count": 4, "document_id": 2},
            "c2": {"count": 1, "document_id": 1},
        }

    def test_grouped_counts_equal_counting_each_group(self, document_store: Any) -> None:
        document_store.write_documents(grouped_docs())
        grouped = document_store.grouped_counts("meta.collection", ["meta.document_id", "meta.tag"])
        for name, counts in grouped.items():
            scope = {"field": "meta.collection", "operator": "==", "value": name}
            assert counts == {
                "count": document_store.count_documents_by_filter(scope),
                **document_store.count_unique_metadata_by_filter(scope, ["meta.document_id", "meta.tag"]),
            }
        assert sum(c["count"] for c in grouped.values()) == document_store.count_documents() - 2

    def test_grouped_counts_of_any_meta_field_without_unique_fields(self, document_store: Any) -> None:
        document_store.write_documents(grouped_docs())
        assert document_store.grouped_counts("tag", []) == {"x": {"count": 2}, "y": {"count": 2}}
        assert document_store.grouped_counts("meta.tag", ["collection"]) == {
            "x": {"count": 2, "collection": 2},
            "y": {"count": 2, "collection": 1},
        }

    def test_grouped_counts_of_an_empty_store(self, document_store: Any) -> None:
        assert document_store.grouped_counts("meta.collection", ["meta.document_id"]) == {}

    def test_grouped_counts_rejects_a_unique_field_named_count(self, document_store: Any) -> None:
        with pytest.raises(ValueError, match="count"):
            document_store.grouped_counts("meta.collection", ["meta.count"])

    async def test_grouped_counts_async(self, document_store: Any) -> None:
        document_store.write_documents(grouped_docs())
        assert await document_store.grouped_counts_async("meta.collection", ["meta.document_id"]) == (
            document_store.grouped_counts("meta.collection", ["meta.document_id"])
        )
