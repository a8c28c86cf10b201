"""API-key auth on every endpoint: 401 without a key, 403 outside the key's role or collections, success within; a
key of a tenant gets 404 for another tenant's collection, exactly as for one that does not exist."""

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.services.api_keys import KeyStore, Role
from app.testing.leaks import served_routes

TEXT = b"The lighthouse keeper lights the lamp at dusk and logs every passing ship in the register."


@pytest.fixture(scope="module")
def store_profile():
    """Auth sits in front of the routes: one store is enough."""
    return "default"


@pytest.fixture(scope="module")
def keys(api_settings) -> dict[str, str]:
    store = KeyStore(api_settings.keys_db)

    def make(role: Role, *collections: str, tenant: str | None = None) -> str:
        created = store.create(
            name=f"{role.value}-{'-'.join(collections) or 'all'}",
            role=role,
            collections=frozenset(collections) or None,
            tenant=tenant,
        )
        assert created is not None
        return created[1]

    return {
        "admin": make(Role.ADMIN),
        "admin_alpha": make(Role.ADMIN, "alpha", "alpha-new"),
        "writer_alpha": make(Role.WRITER, "alpha"),
        "reader_alpha": make(Role.READER, "alpha"),
        "reader_beta": make(Role.READER, "beta"),
        "reader_all": make(Role.READER),  # no tenant, not an admin: every collection without tenant
        "writer_all": make(Role.WRITER),
        # two tenants: acme holds the collection "apples", globex "bananas"
        **{f"acme_{role.value}": make(role, tenant="acme") for role in Role},
        **{f"globex_{role.value}": make(role, tenant="globex") for role in Role},
    }


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def api(api_settings, keys):
    """A client that sends no key by default; alpha and beta each hold one document."""
    with TestClient(create_app(api_settings)) as client:
        for collection, admin in (
            ("alpha", "admin"),
            ("beta", "admin"),
            ("apples", "acme_admin"),
            ("bananas", "globex_admin"),
        ):
            files = [("files", (f"{collection}.txt", TEXT + collection.encode(), "text/plain"))]
            upload = client.post(
                "/documents/upload", files=files, data={"collection": collection}, headers=bearer(keys[admin])
            )
            assert upload.status_code == 200, upload.text
        yield client


def _document_in(client: TestClient, admin: str, collection: str) -> str:
    name = f"doc-{uuid.uuid4().hex[:8]}.txt"  # a source of its own (another case may have restricted an older one)
    files = [("files", (name, TEXT + uuid.uuid4().hex.encode(), "text/plain"))]
    upload = client.post("/documents/upload", files=files, data={"collection": collection}, headers=bearer(admin))
    assert upload.status_code == 200, upload.text
    return str(upload.json()["files"][0]["document_id"])


def _job_in(client: TestClient, admin: str, collection: str) -> str:
    files = [("files", ("job.txt", TEXT + uuid.uuid4().hex.encode(), "text/plain"))]
    upload = client.post(
        "/documents/upload",
        params={"async": "true"},
        files=files,
        data={"collection": collection},
        headers=bearer(admin),
    )
    assert upload.status_code == 202, upload.text
    return str(upload.json()["job_id"])


def _key_in(client: TestClient, admin: str, collection: str) -> str:
    body = {"name": "victim", "role": "reader", "collections": [collection]}
    return str(client.post("/keys", json=body, headers=bearer(admin)).json()["id"])


def _file_in(client: TestClient, admin: str, collection: str) -> str:
    """A file (created by the admin key) attached to the vector store `collection`."""
    upload = client.post(
        "/v1/files",
        files={"file": ("f.txt", TEXT + uuid.uuid4().hex.encode(), "text/plain")},
        data={"purpose": "assistants"},
        headers=bearer(admin),
    )
    assert upload.status_code == 200, upload.text
    file_id = str(upload.json()["id"])
    attach = client.post(f"/v1/vector_stores/{collection}/files", json={"file_id": file_id}, headers=bearer(admin))
    assert attach.status_code == 200, attach.text
    return file_id


def _batch_in(client: TestClient, admin: str, collection: str) -> str:
    file_id = _file_in(client, admin, "alpha")
    batch = client.post(
        f"/v1/vector_stores/{collection}/file_batches", json={"file_ids": [file_id]}, headers=bearer(admin)
    )
    assert batch.status_code == 200, batch.text
    return str(batch.json()["id"])


def _source_in(client: TestClient, admin: str, collection: str) -> str:
    """A folder sync source (created by the admin key) of `collection`, on a folder under RAG_SYNC_ROOTS."""
    (client.app.state.rag.settings.sync_root_paths[0] / collection).mkdir(parents=True, exist_ok=True)  # type: ignore[attr-defined]
    body = {"collection": collection, "kind": "folder", "location": collection}
    created = client.post("/sources", json=body, headers=bearer(admin))
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


@dataclass
class Case:
    """One endpoint: how to call it on `collection`, the role it needs and the status it answers on success."""

    method: str
    path: str
    role: str
    ok: int | set[int]
    call: Callable[[TestClient, dict[str, str], str, dict[str, str]], Any]


def _query(path: str, extra: dict[str, Any] | None = None) -> Callable[..., Any]:
    def call(client: TestClient, keys: dict[str, str], collection: str, headers: dict[str, str]) -> Any:
        body = {"question": "When is the lamp lit?", "collection": collection, "generate": False, **(extra or {})}
        return client.post(path, json=body, headers=headers)

    return call


def _chat(client: TestClient, keys: dict[str, str], collection: str, headers: dict[str, str]) -> Any:
    body = {"messages": [{"role": "user", "content": "When is the lamp lit?"}], "collection": collection}
    return client.post("/v1/chat/completions", json=body, headers=headers)


def _responses_body(collection: str) -> dict[str, Any]:
    tool = {"type": "file_search", "vector_store_ids": [collection], "max_num_results": 1}
    return {"model": "rag", "input": "When is the lamp lit?", "tools": [tool]}


def _response_in(client: TestClient, admin: str, collection: str) -> str:
    created = client.post("/v1/responses", json=_responses_body(collection), headers=bearer(admin))
    assert created.status_code == 200, created.text
    return str(created.json()["id"])


CASES = {
    "list documents": Case(
        "GET",
        "/documents",
        "reader",
        200,
        lambda c, k, col, h: c.get("/documents", params={"collection": col}, headers=h),
    ),
    "upload": Case(
        "POST",
        "/documents/upload",
        "writer",
        200,
        lambda c, k, col, h: c.post(
            "/documents/upload",
            files=[("files", ("new.txt", TEXT + uuid.uuid4().hex.encode(), "text/plain"))],
            data={"collection": col},
            headers=h,
        ),
    ),
    "delete document": Case(
        "DELETE",
        "/documents/{document_id}",
        "writer",
        200,
        lambda c, k, col, h: c.delete(f"/documents/{_document_in(c, k['admin'], col)}", headers=h),
    ),
    "change document access": Case(
        "PATCH",
        "/documents/{document_id}",
        "writer",
        200,
        lambda c, k, col, h: c.patch(
            f"/documents/{_document_in(c, k['admin'], col)}", json={"access": ["group:eng"]}, headers=h
        ),
    ),
    "replace document": Case(
        "PUT",
        "/documents/{document_id}",
        "writer",
        200,
        lambda c, k, col, h: c.put(
            f"/documents/{_document_in(c, k['admin'], col)}",
            files={"file": ("doc.txt", TEXT + uuid.uuid4().hex.encode(), "text/plain")},
            headers=h,
        ),
    ),
    "query": Case("POST", "/query", "reader", 200, _query("/query")),
    "query stream": Case("POST", "/query/stream", "reader", 200, _query("/query/stream")),
    "chat completions": Case("POST", "/v1/chat/completions", "reader", 200, _chat),
    "vector store search": Case(
        "POST",
        "/v1/vector_stores/{vector_store_id}/search",
        "reader",
        200,
        lambda c, k, col, h: c.post(
            f"/v1/vector_stores/{col}/search", json={"query": "When is the lamp lit?"}, headers=h
        ),
    ),
    "create response": Case(
        "POST",
        "/v1/responses",
        "reader",
        200,
        lambda c, k, col, h: c.post("/v1/responses", json=_responses_body(col), headers=h),
    ),
    "get response": Case(
        "GET",
        "/v1/responses/{response_id}",
        "reader",
        200,
        lambda c, k, col, h: c.get(f"/v1/responses/{_response_in(c, k['admin'], col)}", headers=h),
    ),
    "response input items": Case(
        "GET",
        "/v1/responses/{response_id}/input_items",
        "reader",
        200,
        lambda c, k, col, h: c.get(f"/v1/responses/{_response_in(c, k['admin'], col)}/input_items", headers=h),
    ),
    "delete response": Case(
        "DELETE",
        "/v1/responses/{response_id}",
        "reader",
        200,
        lambda c, k, col, h: c.delete(f"/v1/responses/{_response_in(c, k['admin'], col)}", headers=h),
    ),
    "create collection": Case(
        "POST",
        "/collections",
        "admin",
        201,
        lambda c, k, col, h: (
            c.delete(f"/collections/{col}-new", headers=bearer(k["admin"]))
            and c.post("/collections", json={"name": f"{col}-new"}, headers=h)
        ),
    ),
    "drop collection": Case(
        "DELETE",
        "/collections/{name}",
        "admin",
        204,
        lambda c, k, col, h: (
            c.post("/collections", json={"name": f"{col}-new"}, headers=bearer(k["admin"]))
            and c.delete(f"/collections/{col}-new", headers=h)
        ),
    ),
    "create key": Case(
        "POST",
        "/keys",
        "admin",
        201,
        lambda c, k, col, h: c.post("/keys", json={"name": "n", "role": "reader", "collections": [col]}, headers=h),
    ),
    "job status": Case(
        "GET",
        "/jobs/{job_id}",
        "reader",
        200,
        lambda c, k, col, h: c.get(f"/jobs/{_job_in(c, k['admin'], col)}", headers=h),
    ),
    # a job may finish before the call: 409 (nothing to cancel or retry) also means the key was let through
    "cancel job": Case(
        "POST",
        "/jobs/{job_id}/cancel",
        "writer",
        {200, 409},
        lambda c, k, col, h: c.post(f"/jobs/{_job_in(c, k['admin'], col)}/cancel", headers=h),
    ),
    "retry job": Case(
        "POST",
        "/jobs/{job_id}/retry",
        "writer",
        {200, 409},
        lambda c, k, col, h: c.post(f"/jobs/{_job_in(c, k['admin'], col)}/retry", headers=h),
    ),
    "revoke key": Case(
        "DELETE",
        "/keys/{key_id}",
        "admin",
        204,
        lambda c, k, col, h: c.delete(f"/keys/{_key_in(c, k['admin'], col)}", headers=h),
    ),
    "retrieve file": Case(
        "GET",
        "/v1/files/{file_id}",
        "reader",
        200,
        lambda c, k, col, h: c.get(f"/v1/files/{_file_in(c, k['admin'], col)}", headers=h),
    ),
    "file content": Case(
        "GET",
        "/v1/files/{file_id}/content",
        "reader",
        200,
        lambda c, k, col, h: c.get(f"/v1/files/{_file_in(c, k['admin'], col)}/content", headers=h),
    ),
    "delete file": Case(
        "DELETE",
        "/v1/files/{file_id}",
        "writer",
        200,
        lambda c, k, col, h: c.delete(f"/v1/files/{_file_in(c, k['admin'], col)}", headers=h),
    ),
    "retrieve vector store": Case(
        "GET",
        "/v1/vector_stores/{vector_store_id}",
        "reader",
        200,
        lambda c, k, col, h: c.get(f"/v1/vector_stores/{col}", headers=h),
    ),
    "modify vector store": Case(
        "POST",
        "/v1/vector_stores/{vector_store_id}",
        "writer",
        200,
        lambda c, k, col, h: c.post(f"/v1/vector_stores/{col}", json={"metadata": {"k": "v"}}, headers=h),
    ),
    "delete vector store": Case(
        "DELETE",
        "/v1/vector_stores/{vector_store_id}",
        "admin",
        200,
        lambda c, k, col, h: (
            c.post("/collections", json={"name": f"{col}-new"}, headers=bearer(k["admin"]))
            and c.delete(f"/v1/vector_stores/{col}-new", headers=h)
        ),
    ),
    "attach file": Case(
        "POST",
        "/v1/vector_stores/{vector_store_id}/files",
        "writer",
        200,
        lambda c, k, col, h: c.post(
            f"/v1/vector_stores/{col}/files", json={"file_id": _file_in(c, k["admin"], "alpha")}, headers=h
        ),
    ),
    "list vector store files": Case(
        "GET",
        "/v1/vector_stores/{vector_store_id}/files",
        "reader",
        200,
        lambda c, k, col, h: c.get(f"/v1/vector_stores/{col}/files", headers=h),
    ),
    "retrieve vector store file": Case(
        "GET",
        "/v1/vector_stores/{vector_store_id}/files/{file_id}",
        "reader",
        200,
        lambda c, k, col, h: c.get(f"/v1/vector_stores/{col}/files/{_file_in(c, k['admin'], col)}", headers=h),
    ),
    "update vector store file": Case(
        "POST",
        "/v1/vector_stores/{vector_store_id}/files/{file_id}",
        "writer",
        200,
        lambda c, k, col, h: c.post(
            f"/v1/vector_stores/{col}/files/{_file_in(c, k['admin'], col)}", json={"attributes": {"a": 1}}, headers=h
        ),
    ),
    "detach file": Case(
        "DELETE",
        "/v1/vector_stores/{vector_store_id}/files/{file_id}",
        "writer",
        200,
        lambda c, k, col, h: c.delete(f"/v1/vector_stores/{col}/files/{_file_in(c, k['admin'], col)}", headers=h),
    ),
    "create file batch": Case(
        "POST",
        "/v1/vector_stores/{vector_store_id}/file_batches",
        "writer",
        200,
        lambda c, k, col, h: c.post(
            f"/v1/vector_stores/{col}/file_batches", json={"file_ids": [_file_in(c, k["admin"], "alpha")]}, headers=h
        ),
    ),
    "retrieve file batch": Case(
        "GET",
        "/v1/vector_stores/{vector_store_id}/file_batches/{batch_id}",
        "reader",
        200,
        lambda c, k, col, h: c.get(f"/v1/vector_stores/{col}/file_batches/{_batch_in(c, k['admin'], col)}", headers=h),
    ),
    "cancel file batch": Case(
        "POST",
        "/v1/vector_stores/{vector_store_id}/file_batches/{batch_id}/cancel",
        "writer",
        200,
        lambda c, k, col, h: c.post(
            f"/v1/vector_stores/{col}/file_batches/{_batch_in(c, k['admin'], col)}/cancel", headers=h
        ),
    ),
    "list file batch files": Case(
        "GET",
        "/v1/vector_stores/{vector_store_id}/file_batches/{batch_id}/files",
        "reader",
        200,
        lambda c, k, col, h: c.get(
            f"/v1/vector_stores/{col}/file_batches/{_batch_in(c, k['admin'], col)}/files", headers=h
        ),
    ),
    "create source": Case(
        "POST",
        "/sources",
        "admin",
        201,
        lambda c, k, col, h: (
            (c.app.state.rag.settings.sync_root_paths[0] / col).mkdir(parents=True, exist_ok=True)
            or c.post("/sources", json={"collection": col, "kind": "folder", "location": col}, headers=h)
        ),
    ),
    "get source": Case(
        "GET",
        "/sources/{source_id}",
        "reader",
        200,
        lambda c, k, col, h: c.get(f"/sources/{_source_in(c, k['admin'], col)}", headers=h),
    ),
    "update source": Case(
        "PATCH",
        "/sources/{source_id}",
        "admin",
        200,
        lambda c, k, col, h: c.patch(f"/sources/{_source_in(c, k['admin'], col)}", json={"include": ["*"]}, headers=h),
    ),
    "delete source": Case(
        "DELETE",
        "/sources/{source_id}",
        "admin",
        204,
        lambda c, k, col, h: c.delete(f"/sources/{_source_in(c, k['admin'], col)}", headers=h),
    ),
    "start sync run": Case(
        "POST",
        "/sources/{source_id}/runs",
        "writer",
        202,
        lambda c, k, col, h: c.post(f"/sources/{_source_in(c, k['admin'], col)}/runs", headers=h),
    ),
    "sync runs": Case(
        "GET",
        "/sources/{source_id}/runs",
        "reader",
        200,
        lambda c, k, col, h: c.get(f"/sources/{_source_in(c, k['admin'], col)}/runs", headers=h),
    ),
}
# Endpoints every valid key may call; what they show is filtered by the key's scope (tested below).
UNSCOPED = {
    ("GET", "/collections"),
    ("GET", "/keys"),
    ("GET", "/v1/models"),
    ("GET", "/jobs"),
    ("GET", "/v1/files"),
    ("GET", "/v1/vector_stores"),
    ("GET", "/sources"),
}
# Endpoints of no collection that need a role (a new file: a writer; a new vector store: a writer on every collection)
SCOPE_FREE = {("POST", "/v1/files"), ("POST", "/v1/vector_stores")}
PUBLIC = {("GET", "/health"), ("GET", "/ready"), ("GET", "/metrics"), ("GET", "/")}

# the key with exactly the needed role on alpha; a key one role short, or the right role on another collection
SUCCESS_KEY = {"reader": "reader_alpha", "writer": "writer_alpha", "admin": "admin_alpha"}
WRONG_ROLE_KEY = {"writer": "reader_alpha", "admin": "writer_alpha"}


def test_every_route_is_covered_by_the_matrix(api):
    routes = served_routes(api.app)  # `app.routes` holds wrappers of the included routers, not their APIRoutes
    assert ("POST", "/query") in routes and ("GET", "/health") in routes  # the walk finds the routers' routes
    mcp = {(method, "/mcp") for method in ("GET", "POST", "DELETE")}  # its auth cases: tests/app/api/test_mcp.py
    covered = {(case.method, case.path) for case in CASES.values()} | UNSCOPED | SCOPE_FREE | PUBLIC | mcp
    assert routes - covered == set(), "a new route needs an auth case in tests/app/api/test_auth.py"


@pytest.mark.parametrize("name", CASES)
def test_no_key_is_401(api, keys, name):
    response = CASES[name].call(api, keys, "alpha", {})
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("name", CASES)
def test_an_unknown_or_malformed_key_is_401(api, keys, name):
    forged = keys["admin"][:-4] + "AAAA"
    for headers in (bearer(forged), {"X-API-Key": "not-a-key"}, {"Authorization": "Basic YWRtaW46YWRtaW4="}):
        assert CASES[name].call(api, keys, "alpha", headers).status_code == 401


@pytest.mark.parametrize("name", CASES)
def test_outside_the_keys_collections_is_403(api, keys, name):
    case = CASES[name]
    other = {"reader": "reader_beta", "writer": "writer_alpha", "admin": "admin_alpha"}[case.role]
    collection = "alpha" if case.role == "reader" else "beta"  # reader_beta on alpha; alpha keys on beta
    response = case.call(api, keys, collection, bearer(keys[other]))
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "forbidden"


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c.role != "reader"])
def test_a_lower_role_is_403(api, keys, name):
    case = CASES[name]
    response = case.call(api, keys, "alpha", bearer(keys[WRONG_ROLE_KEY[case.role]]))
    assert response.status_code == 403, response.text
    assert "role" in response.json()["error"]["message"]


@pytest.mark.parametrize("name", CASES)
def test_the_right_key_succeeds(api, keys, name):
    case = CASES[name]
    response = case.call(api, keys, "alpha", bearer(keys[SUCCESS_KEY[case.role]]))
    assert response.status_code in ({case.ok} if isinstance(case.ok, int) else case.ok), response.text


@pytest.mark.parametrize("name", CASES)
def test_x_api_key_header_works_too(api, keys, name):
    case = CASES[name]
    response = case.call(api, keys, "alpha", {"X-API-Key": keys[SUCCESS_KEY[case.role]]})
    assert response.status_code in ({case.ok} if isinstance(case.ok, int) else case.ok), response.text


def test_unscoped_listings_need_a_key_and_show_only_the_keys_collections(api, keys):
    for path in ("/collections", "/keys", "/v1/models", "/jobs", "/sources"):
        assert api.get(path).status_code == 401
    _job_in(api, keys["admin"], "beta")
    _job_in(api, keys["admin"], "alpha")
    beta_jobs = api.get("/jobs", headers=bearer(keys["reader_beta"])).json()["jobs"]
    assert beta_jobs and {j["collection"] for j in beta_jobs} == {"beta"}
    assert api.get("/jobs", params={"collection": "alpha"}, headers=bearer(keys["reader_beta"])).status_code == 403
    all_jobs = api.get("/jobs", headers=bearer(keys["admin"])).json()["jobs"]
    assert {"alpha", "beta"} <= {j["collection"] for j in all_jobs}
    names = {c["name"] for c in api.get("/collections", headers=bearer(keys["reader_beta"])).json()}
    assert names == {"beta"}
    assert {"alpha", "beta"} <= {c["name"] for c in api.get("/collections", headers=bearer(keys["admin"])).json()}
    assert api.get("/v1/models", headers=bearer(keys["reader_beta"])).status_code == 200
    assert api.get("/keys", headers=bearer(keys["writer_alpha"])).status_code == 403
    scoped = api.get("/keys", headers=bearer(keys["admin_alpha"])).json()
    assert scoped and all(set(k["collections"]) <= {"alpha", "alpha-new"} for k in scoped)
    assert all("key" not in k for k in scoped)  # secrets are never listed
    everything = api.get("/keys", headers=bearer(keys["admin"])).json()
    assert len(everything) > len(scoped)


def test_files_and_vector_stores_of_no_collection_need_the_right_key(api, keys):
    def upload(headers: dict[str, str]) -> Any:
        files = {"file": ("n.txt", TEXT + uuid.uuid4().hex.encode(), "text/plain")}
        return api.post("/v1/files", files=files, data={"purpose": "assistants"}, headers=headers)

    assert upload({}).status_code == 401
    assert upload(bearer(keys["reader_alpha"])).status_code == 403
    own = upload(bearer(keys["writer_alpha"]))
    assert own.status_code == 200
    assert api.post("/v1/vector_stores", json={"name": "n"}).status_code == 401
    assert api.post("/v1/vector_stores", json={"name": "n"}, headers=bearer(keys["writer_alpha"])).status_code == 403
    created = api.post("/v1/vector_stores", json={"name": "n"}, headers=bearer(keys["admin"]))
    assert created.status_code == 200 and created.json()["id"].startswith("vs_")
    # listings show only what the key may see: its stores, and its own files plus those attached to its stores
    for path in ("/v1/files", "/v1/vector_stores"):
        assert api.get(path).status_code == 401
    stores = {s["id"] for s in api.get("/v1/vector_stores", headers=bearer(keys["reader_beta"])).json()["data"]}
    assert stores == {"beta"}
    in_beta = _file_in(api, keys["admin"], "beta")
    seen = {f["id"] for f in api.get("/v1/files", headers=bearer(keys["reader_beta"])).json()["data"]}
    assert in_beta in seen and own.json()["id"] not in seen
    writer_files = {f["id"] for f in api.get("/v1/files", headers=bearer(keys["writer_alpha"])).json()["data"]}
    assert own.json()["id"] in writer_files and in_beta not in writer_files
    assert api.get(f"/v1/files/{in_beta}", headers=bearer(keys["writer_alpha"])).status_code == 403
    assert api.get("/v1/vector_stores/beta", headers=bearer(keys["reader_alpha"])).status_code == 403


def test_a_scoped_admin_cannot_grant_more_than_it_has(api, keys):
    for collections in (["*"], ["alpha", "beta"]):
        body = {"name": "escalate", "role": "admin", "collections": collections}
        assert api.post("/keys", json=body, headers=bearer(keys["admin_alpha"])).status_code == 403


def test_a_created_key_works_at_once_and_a_revoked_one_is_refused_at_once(api, keys):
    created = api.post(
        "/keys", json={"name": "ci", "role": "reader", "collections": ["alpha"]}, headers=bearer(keys["admin"])
    ).json()
    assert created["key"].startswith(created["prefix"] + "_") and created["role"] == "reader"
    search = {"question": "lamp", "collection": "alpha", "generate": False}
    assert api.post("/query", json=search, headers=bearer(created["key"])).status_code == 200
    assert api.delete(f"/keys/{created['id']}", headers=bearer(keys["admin"])).status_code == 204
    refused = api.post("/query", json=search, headers=bearer(created["key"]))
    assert refused.status_code == 401 and "revoked" in refused.json()["error"]["message"]
    assert api.delete("/keys/000000000000", headers=bearer(keys["admin"])).status_code == 404


def test_bad_key_requests_are_4xx(api, keys):
    admin = bearer(keys["admin"])
    assert api.post("/keys", json={"name": "x", "role": "root"}, headers=admin).status_code == 422
    assert (
        api.post("/keys", json={"name": "x", "role": "reader", "collections": ["../etc"]}, headers=admin).status_code
        == 400
    )
    mixed = {"name": "x", "role": "reader", "collections": ["*", "alpha"]}
    assert api.post("/keys", json=mixed, headers=admin).status_code == 400


def test_health_ready_metrics_are_public_by_default_and_can_require_a_key(api_settings, api, keys):
    for path in ("/health", "/ready", "/metrics"):
        assert api.get(path).status_code == 200
    closed = api_settings.model_copy(update={"public_endpoints": set()})
    with TestClient(create_app(closed)) as client:
        for path in ("/health", "/ready", "/metrics"):
            assert client.get(path).status_code == 401
            assert client.get(path, headers=bearer(keys["reader_beta"])).status_code == 200
        assert client.get("/").status_code == 200  # the demo page itself is static; its API calls need a key


def test_dev_mode_needs_no_key(api_settings):
    with TestClient(create_app(api_settings.model_copy(update={"dev_mode": True}))) as client:
        assert client.post("/collections", json={"name": "devmode"}).status_code == 201
        assert client.delete("/collections/devmode").status_code == 204


def test_rate_limit_is_per_key_with_retry_after(api_settings, keys):
    limited = api_settings.model_copy(update={"rate_limit": "3/minute"})
    with TestClient(create_app(limited)) as client:
        first = bearer(keys["reader_alpha"])
        statuses = [client.get("/collections", headers=first).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        refused = client.get("/collections", headers=first)
        assert refused.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert client.get("/collections", headers=bearer(keys["reader_beta"])).status_code == 200  # its own budget
        assert client.get("/health").status_code == 200  # public endpoints are not limited


def test_first_start_without_keys_writes_an_admin_key_file(tmp_path, api_settings):
    fresh = api_settings.model_copy(update={"data_dir": tmp_path / "data"})
    with TestClient(create_app(fresh)) as client:
        key_file = fresh.bootstrap_key_file
        assert key_file.stat().st_mode & 0o777 == 0o600
        key = key_file.read_text().strip()
        assert client.post("/collections", json={"name": "boot"}, headers=bearer(key)).status_code == 201
    key_file.unlink()
    with TestClient(create_app(fresh)):
        assert not key_file.exists()  # keys exist now: no second bootstrap key


@pytest.mark.integration
def test_rate_limit_counters_can_be_shared_through_redis(api_settings, keys, redis_server):
    shared = api_settings.model_copy(update={"rate_limit": "3/minute", "rate_limit_storage": redis_server})
    key = bearer(keys["reader_alpha"])
    with TestClient(create_app(shared)) as first, TestClient(create_app(shared)) as second:
        assert [c.get("/collections", headers=key).status_code for c in (first, second, first)] == [200, 200, 200]
        refused = second.get("/collections", headers=key)  # the other "worker" saw the same three requests
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1


# -- tenants: another tenant's collection is answered exactly as one that does not exist ---------------------------
TENANT_KEY = {"reader": "acme_reader", "writer": "acme_writer", "admin": "acme_admin"}
# creating a name is not using a collection: an upload or a new collection answer 409 for a name another tenant holds,
# and a new key names no collection of a tenant (tested on their own below)
CREATING = {"upload", "create collection", "create key"}
# the bodies a route needs before it looks at its path (validated first)
BODIES = {
    "vector store search": {"query": "When is the lamp lit?"},
    "modify vector store": {"metadata": {"k": "v"}},
    "attach file": {"file_id": "file-unknown"},
    "create file batch": {"file_ids": ["file-unknown"]},
    "update vector store file": {"attributes": {"a": 1}},
    "change document access": {"access": ["group:eng"]},
    "update source": {"include": ["*"]},
}


def _shape(response: Any) -> str:
    """The answer with every quoted name or id blanked: what a caller learns beyond what it sent."""
    return f"{response.status_code} " + re.sub(r"'[^']*'", "'_'", json.dumps(response.json(), sort_keys=True))


MULTIPART = {"replace document"}


def _missing(api: TestClient, keys: dict[str, str], name: str, headers: dict[str, str]) -> Any:
    """The same route on a collection (and ids) that do not exist."""
    case = CASES[name]
    params = re.findall(r"\{(\w+)\}", case.path)
    missing = f"missing-{uuid.uuid4().hex[:8]}"
    if not params:
        return case.call(api, keys, missing, headers)
    values = {p: missing if p in ("name", "vector_store_id") else f"unknown{uuid.uuid4().hex[:8]}" for p in params}
    if "source_id" in values:
        values["source_id"] = f"src_{uuid.uuid4().hex[:24]}"
    url = case.path.format(**values)
    if name in MULTIPART:  # a well-formed upload, so only the missing id can fail it
        return api.request(case.method, url, files={"file": ("doc.txt", TEXT, "text/plain")}, headers=headers)
    return api.request(case.method, url, json=BODIES.get(name), headers=headers)


@pytest.mark.parametrize("name", [n for n in CASES if n not in CREATING])
def test_another_tenants_collection_is_404_exactly_like_a_missing_one(api, keys, name):
    case = CASES[name]
    headers = bearer(keys[TENANT_KEY[case.role]])  # acme, with the role the route needs, on every collection
    for collection in ("bananas", "alpha"):  # globex's; the operator's (no tenant)
        foreign = case.call(api, keys, collection, headers)
        assert foreign.status_code == 404, foreign.text
        assert foreign.json()["error"]["code"] == "not_found"
        assert _shape(foreign) == _shape(_missing(api, keys, name, headers))
        assert "globex" not in foreign.text


@pytest.mark.parametrize("name", ["list documents", "query", "vector store search", "retrieve vector store"])
def test_a_key_without_tenant_does_not_reach_a_tenants_collection(api, keys, name):
    response = CASES[name].call(api, keys, "apples", bearer(keys["reader_all"]))
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found", response.text
    assert CASES[name].call(api, keys, "alpha", bearer(keys["reader_all"])).status_code == 200


# the helpers of these create the collection, key or file they act on with the operator's key: none of acme's
OPERATORS_OWN = {"drop collection", "delete vector store", "revoke key", "attach file", "create file batch"}


@pytest.mark.parametrize("name", [n for n in CASES if n not in CREATING | OPERATORS_OWN])
def test_a_tenant_key_uses_its_own_collections(api, keys, name):
    case = CASES[name]
    response = case.call(api, keys, "apples", bearer(keys[TENANT_KEY[case.role]]))
    assert response.status_code in ({case.ok} if isinstance(case.ok, int) else case.ok), response.text


def test_a_name_another_tenant_holds_cannot_be_created_and_the_answer_does_not_say_whose(api, keys):
    admin = bearer(keys["acme_admin"])
    theirs = api.post("/collections", json={"name": "bananas"}, headers=admin)
    ours = api.post("/collections", json={"name": "apples"}, headers=admin)
    assert theirs.status_code == ours.status_code == 409 and _shape(theirs) == _shape(ours)
    untenanted = api.post("/collections", json={"name": "alpha"}, headers=admin)
    assert _shape(untenanted) == _shape(ours)
    files = [("files", ("x.txt", TEXT + uuid.uuid4().hex.encode(), "text/plain"))]
    uploads = [
        api.post("/documents/upload", files=files, data={"collection": name}, headers=bearer(keys[key]))
        for name, key in (("bananas", "acme_writer"), ("alpha", "acme_writer"), ("apples", "writer_all"))
    ]
    for upload in uploads:
        assert upload.status_code == 409 and "globex" not in upload.text and "acme" not in upload.text, upload.text
        assert _shape(upload) == _shape(ours)
    assert api.post("/collections", json={"name": "bananas"}, headers=bearer(keys["admin"])).status_code == 409
    new = f"acme-{uuid.uuid4().hex[:6]}"
    assert api.post("/collections", json={"name": new}, headers=admin).status_code == 201
    assert new in {c["name"] for c in api.get("/collections", headers=bearer(keys["acme_reader"])).json()}
    assert new not in {c["name"] for c in api.get("/collections", headers=bearer(keys["globex_admin"])).json()}
    assert api.delete(f"/collections/{new}", headers=bearer(keys["globex_admin"])).status_code == 404
    assert api.delete(f"/collections/{new}", headers=admin).status_code == 204


def test_an_upload_of_a_tenant_creates_its_collection_and_its_chunks_carry_the_tenant(api, keys):
    name = f"acme-{uuid.uuid4().hex[:6]}"
    files = [("files", ("t.txt", TEXT + uuid.uuid4().hex.encode(), "text/plain"))]
    upload = api.post("/documents/upload", files=files, data={"collection": name}, headers=bearer(keys["acme_writer"]))
    assert upload.status_code == 200, upload.text
    assert name in {c["name"] for c in api.get("/collections", headers=bearer(keys["acme_reader"])).json()}
    assert api.get("/documents", params={"collection": name}, headers=bearer(keys["globex_admin"])).status_code == 404
    store = api.app.state.rag.pipelines.document_store
    chunks = store.filter_documents({"field": "meta.collection", "operator": "==", "value": name})
    assert chunks and {c.meta["tenant"] for c in chunks} == {"acme"}
    alpha = store.filter_documents({"field": "meta.collection", "operator": "==", "value": "alpha"})
    assert {c.meta["tenant"] for c in alpha} == {""}


def test_every_listing_shows_only_the_callers_tenant_and_the_operator_sees_all(api, keys):
    _job_in(api, keys["acme_admin"], "apples")
    _job_in(api, keys["globex_admin"], "bananas")
    acme_file = _file_in(api, keys["acme_admin"], "apples")
    globex_file = _file_in(api, keys["globex_admin"], "bananas")

    def listed(key: str) -> dict[str, set[str]]:
        headers = bearer(keys[key])
        return {
            "collections": {c["name"] for c in api.get("/collections", headers=headers).json()},
            "vector stores": {s["id"] for s in api.get("/v1/vector_stores", headers=headers).json()["data"]},
            "jobs": {j["collection"] for j in api.get("/jobs", params={"limit": 100}, headers=headers).json()["jobs"]},
            "files": {f["id"] for f in api.get("/v1/files", params={"limit": 10000}, headers=headers).json()["data"]},
        }

    for tenant, other, own_file, their_file in (
        ("acme", "globex", acme_file, globex_file),
        ("globex", "acme", globex_file, acme_file),
    ):
        for role in ("reader", "admin"):
            seen = listed(f"{tenant}_{role}")
            mine = "apples" if tenant == "acme" else "bananas"
            assert mine in seen["collections"] and mine in seen["vector stores"] and mine in seen["jobs"]
            for kind in ("collections", "vector stores", "jobs"):
                assert not seen[kind] & {"alpha", "beta", "bananas" if tenant == "acme" else "apples"}, (tenant, kind)
            assert own_file in seen["files"] and their_file not in seen["files"]
        tenant_keys = api.get("/keys", headers=bearer(keys[f"{tenant}_admin"])).json()
        assert tenant_keys and {k["tenant"] for k in tenant_keys} == {tenant}
        assert other not in api.get("/keys", headers=bearer(keys[f"{tenant}_admin"])).text
    untenanted = listed("reader_all")
    assert not untenanted["collections"] & {"apples", "bananas"} and {"alpha", "beta"} <= untenanted["collections"]
    assert not untenanted["jobs"] & {"apples", "bananas"} and not {acme_file, globex_file} & untenanted["files"]
    operator = listed("admin")
    assert {"alpha", "apples", "bananas"} <= operator["collections"] and {acme_file, globex_file} <= operator["files"]
    assert {"apples", "bananas"} <= operator["jobs"] and {"apples", "bananas"} <= operator["vector stores"]
    assert {"acme", "globex", None} <= {k["tenant"] for k in api.get("/keys", headers=bearer(keys["admin"])).json()}


def test_a_tenant_admin_creates_and_revokes_keys_of_its_own_tenant_only(api, keys):
    admin = bearer(keys["acme_admin"])

    def create(headers: dict[str, str], **extra: Any) -> Any:
        return api.post("/keys", json={"name": "t", "role": "reader", **extra}, headers=headers)

    own = create(admin, tenant="acme")
    assert own.status_code == 201 and own.json()["tenant"] == "acme", own.text
    for extra in ({"tenant": "globex"}, {}, {"tenant": None}):  # another tenant, or an operator key
        refused = create(admin, **extra)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden", refused.text
    for role in ("admin", "writer"):
        assert create(admin, tenant="acme", role=role).status_code == 201
    assert create(admin, tenant="acme", collections=["*"]).status_code == 201
    assert create(admin, tenant="ac me").status_code == 400
    theirs = create(bearer(keys["admin"]), tenant="globex")  # the operator creates keys of any tenant, or none
    assert theirs.status_code == 201 and theirs.json()["tenant"] == "globex"
    assert create(bearer(keys["admin"])).json()["tenant"] is None
    revoke = api.delete(f"/keys/{theirs.json()['id']}", headers=admin)
    unknown = api.delete("/keys/000000000000", headers=admin)
    assert revoke.status_code == 404 and _shape(revoke) == _shape(unknown)
    assert api.delete(f"/keys/{theirs.json()['id']}", headers=bearer(keys["globex_admin"])).status_code == 204
    assert api.delete(f"/keys/{own.json()['id']}", headers=admin).status_code == 204
    works = create(admin, tenant="acme").json()["key"]
    assert api.get("/documents", params={"collection": "apples"}, headers=bearer(works)).status_code == 200
    assert api.get("/documents", params={"collection": "bananas"}, headers=bearer(works)).status_code == 404
