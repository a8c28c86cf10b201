"""The read filter with and without missing-value filters: on a store whose filters cannot match a missing field
(Pinecone), no clause names `None` and a chunk without `acl`/`tenant` meta is read by `*` keys only (fail closed); on
the others, such a chunk is public and without tenant, as before."""

from __future__ import annotations

import pytest
from haystack import Document
from haystack.document_stores.in_memory import InMemoryDocumentStore
from haystack_integrations.document_stores.pinecone.filters import _normalize_filters

from app.services.access import PUBLIC_ACL
from app.services.api_keys import ApiKey, Role
from app.services.visibility import acl_condition, read_filter, tenant_filter

ENG_ACL = "acl_eng"


class _Acls:
    """The access store's one query: the acl ids a key's principals read (None: every one, for `*`)."""

    def readable_acls(self, principals):
        if "*" in principals:
            return None
        return sorted([PUBLIC_ACL, *([ENG_ACL] if "group:eng" in principals else [])])


def _key(role: Role, tenant: str | None, *principals: str) -> ApiKey:
    return ApiKey("k", "k", role, None, "", principals=frozenset(principals), tenant=tenant)


def _has_none(value) -> bool:
    if isinstance(value, dict):
        return any(_has_none(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_none(v) for v in value)
    return value is None


@pytest.fixture
def store() -> InMemoryDocumentStore:
    store = InMemoryDocumentStore()
    chunks = {
        "public": {"acl": PUBLIC_ACL, "tenant": ""},
        "eng": {"acl": ENG_ACL, "tenant": ""},
        "hr": {"acl": "acl_hr", "tenant": ""},
        "acme-eng": {"acl": ENG_ACL, "tenant": "acme"},
        "legacy": {},  # indexed before access lists and tenants
    }
    store.write_documents([Document(id=name, content=name, meta=meta) for name, meta in chunks.items()])
    return store


def _read(store: InMemoryDocumentStore, key: ApiKey, *, missing_values: bool) -> set[str]:
    flt = read_filter(key, _Acls(), missing_values=missing_values)
    return {d.id for d in store.filter_documents(flt)}


def test_without_missing_values_no_clause_names_none_and_pinecone_accepts_the_filter():
    for key in (_key(Role.READER, None, "group:eng"), _key(Role.READER, "acme", "group:eng"), _key(Role.READER, None)):
        flt = read_filter(key, _Acls(), missing_values=False)
        assert flt is not None and not _has_none(flt)
        _normalize_filters(flt)  # pinecone-haystack's converter: FilterError on a None
    assert read_filter(_key(Role.READER, "acme", "group:eng"), _Acls(), missing_values=False) == {
        "operator": "AND",
        "conditions": [
            {"field": "meta.tenant", "operator": "==", "value": "acme"},
            {"field": "meta.acl", "operator": "in", "value": [ENG_ACL, PUBLIC_ACL]},
        ],
    }
    assert tenant_filter(_key(Role.WRITER, None), missing_values=False) == {
        "field": "meta.tenant",
        "operator": "==",
        "value": "",
    }
    assert acl_condition([PUBLIC_ACL], missing_values=False) == {
        "field": "meta.acl",
        "operator": "in",
        "value": [PUBLIC_ACL],
    }


def test_with_missing_values_the_filter_is_unchanged():
    key = _key(Role.READER, None, "group:eng")
    assert read_filter(key, _Acls()) == read_filter(key, _Acls(), missing_values=True)
    assert _has_none(read_filter(key, _Acls(), missing_values=True))


@pytest.mark.parametrize("missing_values", [True, False])
def test_scoped_keys_read_their_chunks_and_legacy_ones_only_with_missing_values(store, missing_values):
    legacy = {"legacy"} if missing_values else set()  # fail closed where the store cannot match a missing field
    eng = _key(Role.READER, None, "group:eng")
    assert _read(store, eng, missing_values=missing_values) == {"public", "eng"} | legacy
    assert _read(store, _key(Role.READER, None), missing_values=missing_values) == {"public"} | legacy
    assert _read(store, _key(Role.READER, "acme", "group:eng"), missing_values=missing_values) == {"acme-eng"}
    everyone = _key(Role.ADMIN, None, "*")  # the operator: no filter at all, every chunk
    assert read_filter(everyone, _Acls(), missing_values=missing_values) is None
    star = _key(Role.READER, None, "*")  # `*` without tenant, not admin: the chunks without tenant
    assert _read(store, star, missing_values=missing_values) == {"public", "eng", "hr"} | legacy
