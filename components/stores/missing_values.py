"""`filters_missing_values`: whether a document store's filters can match a meta field that is missing.

Haystack's filter language writes "the field is missing (or null)" as `{"field": "meta.x", "operator": "==", "value":
None}`. LanceDB, pgvector (`IS NULL`), Weaviate (`is_none`) and the in-memory store evaluate it; pinecone-haystack
refuses it (Pinecone's metadata filters have no null: FilterError). Code that builds filters for any store asks here
before it writes such a clause:

```python
filters_missing_values(pipelines.document_store)  # False for PineconeDocumentStore
```

The answer comes from the store's class (or a base class) in `MISSING_VALUE_STORES`; a store not listed is taken to
have no missing-value filters, the safe answer: a filter built for it never errors on a null, and what it does not
match (chunks without the field) stays unread.
"""

from __future__ import annotations

from typing import Any

#: Document store classes (module + qualified name) whose filters match a missing field with `"value": None`.
MISSING_VALUE_STORES = frozenset(
    {
        "components.stores.lancedb.document_store.LanceDBDocumentStore",
        "haystack_integrations.document_stores.pgvector.document_store.PgvectorDocumentStore",
        "haystack_integrations.document_stores.weaviate.document_store.WeaviateDocumentStore",
        "haystack.document_stores.in_memory.document_store.InMemoryDocumentStore",
    }
)


def filters_missing_values(store: Any) -> bool:
    """True when `store`'s filters accept `"value": None` for "missing" (its class or a base class is listed in
    `MISSING_VALUE_STORES`); False for any other store (Pinecone, or one this module does not know)."""
    return any(f"{cls.__module__}.{cls.__qualname__}" in MISSING_VALUE_STORES for cls in type(store).__mro__)
