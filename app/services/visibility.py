"""Which documents a caller may read, as one Haystack filter that every read path ANDs into its store query.

Documents carry two scalar meta fields: `tenant` (the tenant of their collection, "" for none) and `acl` (the id of
their access list, "public" for none). `read_filter(key)` is the store-side condition for one API key: documents a
caller may not read are never fetched, so no top_k, count, citation or error message can reveal them.
"""

from __future__ import annotations

from typing import Any

from app.services.api_keys import ApiKey


def tenant_filter(key: ApiKey) -> dict[str, Any] | None:
    """`meta.tenant == <the key's tenant, "" without one>`; None for the operator (an admin key without tenant), who
    reads every tenant's chunks."""
    if key.is_operator:
        return None
    return {"field": "meta.tenant", "operator": "==", "value": key.tenant or ""}


def read_filter(key: ApiKey) -> dict[str, Any] | None:
    """The filter the chunks `key` may read satisfy (None: every chunk of the collections it may use)."""
    return and_filters(tenant_filter(key))


def and_filters(*filters: dict[str, Any] | None) -> dict[str, Any] | None:
    """AND the given filters (None entries are left out); None when none is left."""
    present = [f for f in filters if f]
    if not present:
        return None
    if len(present) == 1:
        return present[0]
    return {"operator": "AND", "conditions": present}
