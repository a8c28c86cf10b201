"""The tenant condition of the read filter: a key of a tenant reads its tenant's chunks, a key without tenant the
chunks without tenant, the operator (an admin key without tenant) every chunk."""

from haystack import Document
from haystack.document_stores.in_memory import InMemoryDocumentStore

from app.services.api_keys import DEV_KEY, ApiKey, Role
from app.services.visibility import tenant_filter


def _key(role: Role, tenant: str | None) -> ApiKey:
    return ApiKey("k", "k", role, None, "", tenant=tenant)


def test_the_read_filter_keeps_each_key_within_its_tenant():
    store = InMemoryDocumentStore()
    store.write_documents(
        [Document(content=t or "none", meta={"collection": "c", "tenant": t}) for t in ("acme", "globex", "")]
        + [Document(content="legacy", meta={"collection": "c"})]  # indexed before tenants: no tenant
    )

    def readable(key: ApiKey) -> set[str]:
        return {d.content for d in store.filter_documents(tenant_filter(key))}

    assert tenant_filter(_key(Role.ADMIN, "acme")) == {"field": "meta.tenant", "operator": "==", "value": "acme"}
    assert readable(_key(Role.ADMIN, "acme")) == {"acme"}  # a tenant admin is no operator
    assert readable(_key(Role.READER, "globex")) == {"globex"}
    assert readable(_key(Role.WRITER, None)) == {"none", "legacy"}
    assert tenant_filter(_key(Role.ADMIN, None)) is None and tenant_filter(DEV_KEY) is None
