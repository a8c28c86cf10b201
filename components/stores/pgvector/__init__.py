"""pgvector-haystack's store made safe for a multi-threaded server (connection pool, retries): `document_store`."""

from components.stores.pgvector.document_store import (
    PooledPgvectorDocumentStore,
    StoreUnavailableError,
    pgvector_store_from_dict,
)

__all__ = ["PooledPgvectorDocumentStore", "StoreUnavailableError", "pgvector_store_from_dict"]
