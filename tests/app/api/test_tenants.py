"""Tenants end to end, on both stores (LanceDB, pgvector) and both state backends (SQLite, PostgreSQL): two tenants,
each with an admin and a reader made through `POST /keys` by the operator; each finds its own passages and nothing of
the other's, and every use of the other tenant's collection (REST and MCP) answers exactly as a missing one."""

import json
import re
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.composition import key_store
from app.main import create_app
from app.services.api_keys import Role
from app.settings import Settings

TEXTS = {
    "acme": b"The acme lighthouse keeper lights the lamp at dusk and logs every passing ship in the register.",
    "globex": b"The globex orchard keeper prunes the pear trees in March and records the harvest in a ledger.",
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-06-18"}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _shape(response: Any) -> str:
    """The answer with every quoted name or id blanked."""
    return f"{response.status_code} " + re.sub(r"'[^']*'", "'_'", json.dumps(response.json(), sort_keys=True))


def _tool(client: TestClient, key: str, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}
    reply = client.post("/mcp", json=call, headers={**MCP_HEADERS, **bearer(key)})
    assert reply.status_code == 200, reply.text
    result: dict[str, Any] = reply.json()["result"]
    return result


@pytest.fixture
def deployment(tmp_path, make_tiny_profile, store_profile, state_url):
    """The app on this store and state backend; the operator's key; each tenant's keys and collection."""
    pipelines = make_tiny_profile(tmp_path / "pipelines", profile=store_profile)
    settings = Settings(data_dir=tmp_path / "data", pipelines_dir=pipelines, state_url=state_url, rate_limit="off")
    created = key_store(settings).create(name="operator", role=Role.ADMIN, collections=None)
    assert created is not None
    operator = created[1]
    suffix = uuid.uuid4().hex[:8]  # the pgvector table outlives the test: names of this test only
    collections = {"acme": f"apples-{suffix}", "globex": f"bananas-{suffix}"}
    with TestClient(create_app(settings)) as client:
        keys: dict[str, str] = {}
        for tenant in ("acme", "globex"):
            for role in ("admin", "reader"):
                body = {"name": f"{tenant} {role}", "role": role, "tenant": tenant}
                made = client.post("/keys", json=body, headers=bearer(operator))
                assert made.status_code == 201 and made.json()["tenant"] == tenant, made.text
                keys[f"{tenant}_{role}"] = made.json()["key"]
            upload = client.post(
                "/documents/upload",
                files=[("files", (f"{tenant}.txt", TEXTS[tenant], "text/plain"))],
                data={"collection": collections[tenant]},
                headers=bearer(keys[f"{tenant}_admin"]),
            )
            assert upload.status_code == 200, upload.text
            keys[f"{tenant}_document"] = upload.json()["files"][0]["document_id"]
        yield client, operator, keys, collections


def test_each_tenant_reads_only_its_own_collection(deployment):
    client, operator, keys, collections = deployment
    store = client.app.state.rag.pipelines.document_store
    for tenant, other in (("acme", "globex"), ("globex", "acme")):
        reader = bearer(keys[f"{tenant}_reader"])
        mine, theirs, missing = collections[tenant], collections[other], f"missing-{uuid.uuid4().hex[:8]}"

        def ask(collection: str, headers: dict[str, str] = reader) -> Any:
            body = {"question": "Who keeps the register?", "collection": collection, "generate": False}
            return client.post("/query", json=body, headers=headers)

        own = ask(mine)
        assert own.status_code == 200, own.text
        texts = " ".join(s["text"] for s in own.json()["sources"])
        assert tenant in texts and other not in texts
        chat = {"messages": [{"role": "user", "content": "Who keeps the register?"}]}
        question = {"question": "Who keeps the register?", "generate": False}
        for path, body in (("/query", question), ("/query/stream", question), ("/v1/chat/completions", chat)):
            foreign = client.post(path, json={**body, "collection": theirs}, headers=reader)
            absent = client.post(path, json={**body, "collection": missing}, headers=reader)
            assert foreign.status_code == 404 and _shape(foreign) == _shape(absent), foreign.text
        for path in ("/v1/vector_stores/{}", "/documents?collection={}", "/v1/vector_stores/{}/files"):
            foreign, absent = (client.get(path.format(c), headers=reader) for c in (theirs, missing))
            assert foreign.status_code == 404 and _shape(foreign) == _shape(absent), (path, foreign.text)
        search = {"query": "keeper"}
        foreign, absent = (
            client.post(f"/v1/vector_stores/{c}/search", json=search, headers=reader) for c in (theirs, missing)
        )
        assert foreign.status_code == 404 and _shape(foreign) == _shape(absent)
        their_document = keys[f"{other}_document"]
        gone = client.delete(f"/documents/{their_document}", headers=bearer(keys[f"{tenant}_admin"]))
        unknown = client.delete(f"/documents/{uuid.uuid4().hex}", headers=bearer(keys[f"{tenant}_admin"]))
        assert gone.status_code == 404 and _shape(gone) == _shape(unknown)
        # MCP: search and fetch answer the other tenant's collection and document as missing ones
        searched = _tool(client, keys[f"{tenant}_reader"], "search", {"query": "keeper", "collection": theirs})
        nothing = _tool(client, keys[f"{tenant}_reader"], "search", {"query": "keeper", "collection": missing})
        assert searched["isError"] and "not_found" in searched["content"][0]["text"]
        assert searched["content"][0]["text"].replace(theirs, "X") == nothing["content"][0]["text"].replace(
            missing, "X"
        )
        fetched = _tool(client, keys[f"{tenant}_reader"], "fetch", {"document_id": their_document})
        assert fetched["isError"] and "not_found" in fetched["content"][0]["text"]
        own_search = _tool(client, keys[f"{tenant}_reader"], "search", {"query": "keeper", "collection": mine})
        assert not own_search.get("isError") and own_search["structuredContent"]["passages"]
        # listings: its own collection only
        listed = {c["name"] for c in client.get("/collections", headers=reader).json()}
        stores = {s["id"] for s in client.get("/v1/vector_stores", headers=reader).json()["data"]}
        assert mine in listed and theirs not in listed and mine in stores and theirs not in stores
        assert other not in client.get("/keys", headers=bearer(keys[f"{tenant}_admin"])).text
        # its chunks carry its tenant
        chunks = store.filter_documents({"field": "meta.collection", "operator": "==", "value": mine})
        assert chunks and {c.meta["tenant"] for c in chunks} == {tenant}
    # the operator sees and reads both tenants
    names = {c["name"] for c in client.get("/collections", headers=bearer(operator)).json()}
    assert set(collections.values()) <= names
    for collection in collections.values():
        body = {"question": "Who keeps the register?", "collection": collection, "generate": False}
        assert client.post("/query", json=body, headers=bearer(operator)).json()["sources"]


def test_tenant_admins_keep_to_their_tenant(deployment):
    client, operator, keys, collections = deployment
    admin = bearer(keys["acme_admin"])
    for tenant in ("globex", None):
        refused = client.post("/keys", json={"name": "x", "role": "admin", "tenant": tenant}, headers=admin)
        assert refused.status_code == 403, refused.text
    refused = client.post("/keys", json={"name": "x", "role": "admin"}, headers=admin)
    assert refused.status_code == 403
    listed = client.get("/keys", headers=admin).json()
    assert {k["tenant"] for k in listed} == {"acme"}
    globex_keys = [k for k in client.get("/keys", headers=bearer(operator)).json() if k["tenant"] == "globex"]
    assert globex_keys
    revoke = client.delete(f"/keys/{globex_keys[0]['id']}", headers=admin)
    assert revoke.status_code == 404 and _shape(revoke) == _shape(client.delete("/keys/0123456789ab", headers=admin))
    taken = client.post("/collections", json={"name": collections["globex"]}, headers=admin)
    assert taken.status_code == 409 and "globex" not in taken.text
    dropped = client.delete(f"/collections/{collections['globex']}", headers=admin)
    absent = client.delete("/collections/missing-collection", headers=admin)
    assert dropped.status_code == 404 and _shape(dropped) == _shape(absent)
    assert (
        client.get("/documents", params={"collection": collections["globex"]}, headers=bearer(operator)).json()["total"]
        == 1
    )
