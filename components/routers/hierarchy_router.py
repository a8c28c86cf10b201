"""Route `HierarchicalDocumentSplitter` output: leaves are embedded and searched, parents only stored."""

from __future__ import annotations

from haystack import Document, component


def is_parent(document: Document) -> bool:
    """Whether `document` is a parent block of `HierarchicalDocumentSplitter` (it lists its children)."""
    children = document.meta.get("__children_ids")
    return isinstance(children, list) and bool(children)


@component
class HierarchyRouter:
    """
    Sends the leaves of a document hierarchy to `leaves` and the blocks that have children to `parents`.

    Leaves go on to be embedded and indexed; parents are written without an embedding, for
    `AutoMergingRetriever` to fetch by id (a LanceDB store created with `keyword_meta_fields` does not keyword-index
    them either, so they are never search hits). Documents from other splitters have no children: they are leaves.

    ```python
    blocks = HierarchicalDocumentSplitter(block_sizes={600, 150}).run(docs)["documents"]
    routed = HierarchyRouter().run(documents=blocks)  # routed["leaves"], routed["parents"]
    ```
    """

    @component.output_types(leaves=list[Document], parents=list[Document])
    def run(self, documents: list[Document]) -> dict[str, list[Document]]:
        """
        :param documents: Documents from a splitter, in order.
        :returns: `leaves` and `parents`, each in input order.
        """
        leaves: list[Document] = []
        parents: list[Document] = []
        for document in documents:
            (parents if is_parent(document) else leaves).append(document)
        return {"leaves": leaves, "parents": parents}
