"""The embedded LanceDB document store: `document_store` (the store), `filters` (SQL pushdown and Python residual),
`converters` (Document <-> Arrow rows), `indexes` (index upkeep and caches), `search` and `metadata` (queries)."""

from components.stores.lancedb.document_store import LanceDBDocumentStore

__all__ = ["LanceDBDocumentStore"]
