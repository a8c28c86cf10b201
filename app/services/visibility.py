"""Which documents a caller may read, as one Haystack filter that every read path ANDs into its store query.

Documents carry two scalar meta fields: `tenant` (the tenant of their collection, "" for none) and `acl` (the id of
their access list, "public" for none: `app.services.access`). `read_filter(key, access)` is the store-side condition
for one API key: documents a caller may not read are never fetched, so no top_k, count, citation or error message can
reveal them. Chunks indexed before access lists existed carry no `acl` (nor `tenant`): on a store whose filters
match a missing value (`components.stores.missing_values`: LanceDB, pgvector, Weaviate) they are public and without
tenant; on one whose filters cannot (Pinecone) the filter names only values, so such chunks are read by `*` keys
alone until they are indexed again (fail closed). The composition root asks the store once
(`Services.missing_value_filters`); `app.api.auth.read_scope` passes the answer here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.services.api_keys import ApiKey

if TYPE_CHECKING:
    from app.services.access import AccessStore

ACL_FIELD = "meta.acl"


def acl_condition(acls: list[str] | None, *, missing_values: bool = True) -> dict[str, Any] | None:
    """`meta.acl` in `acls`, or missing (a chunk indexed before access lists: public) when the store's filters can say
    so (`missing_values`); None for no condition."""
    if acls is None:
        return None
    listed = {"field": ACL_FIELD, "operator": "in", "value": list(acls)}
    if not missing_values:
        return listed
    return {
        "operator": "OR",
        "conditions": [
            listed,
            {"field": ACL_FIELD, "operator": "==", "value": None},
        ],
    }


def tenant_filter(key: ApiKey, *, missing_values: bool = True) -> dict[str, Any] | None:
    """`meta.tenant == <the key's tenant>`; for a key without tenant, "" or missing (chunks indexed before tenants,
    when the store's filters can say so: `missing_values`); None for the operator (an admin key without tenant), who
    reads every tenant's chunks."""
    if key.is_operator:
        return None
    if key.tenant:
        return {"field": "meta.tenant", "operator": "==", "value": key.tenant}
    if not missing_values:
        return {"field": "meta.tenant", "operator": "==", "value": ""}
    return {
        "operator": "OR",
        "conditions": [
            {"field": "meta.tenant", "operator": "==", "value": ""},
            {"field": "meta.tenant", "operator": "==", "value": None},
        ],
    }


def read_filter(key: ApiKey, access: AccessStore, *, missing_values: bool = True) -> dict[str, Any] | None:
    """The filter the chunks `key` may read satisfy (None: every chunk of the collections it may use): its tenant's
    chunks whose access list it reads. One query of the state database (the acl ids its principals read); `*` reads
    every document of its tenant. `missing_values`: the document store's filters match a missing field with `None`
    (`components.stores.missing_values.filters_missing_values`); without, no clause names `None` and chunks without
    `acl`/`tenant` meta are not read."""
    acls = access.readable_acls(key.principals)
    return and_filters(
        tenant_filter(key, missing_values=missing_values), acl_condition(acls, missing_values=missing_values)
    )


def and_filters(*filters: dict[str, Any] | None) -> dict[str, Any] | None:
    """AND the given filters (None entries are left out); None when none is left."""
    present = [f for f in filters if f]
    if not present:
        return None
    if len(present) == 1:
        return present[0]
    return {"operator": "AND", "conditions": present}
