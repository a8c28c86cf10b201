"""A deployment seeded for leak tests: tenants, collections, documents with canary strings, and keys of several
principals, with the oracle of what each key may read and the checks that no response reveals anything else.

- `create_key(settings, ...)`: an API key with principals and a tenant, written through the key store (the
  `principals`/`tenant` columns set with SQL, so it works whether or not `POST /keys` takes them);
- `build_world(client, settings)`: the seeded deployment (`World`), built through the REST API as the lead, tenant
  admins and writers would build it: collections created by each tenant's admin, documents uploaded with an `access`
  list (synchronously, through a background job, and as files attached to a vector store);
- `World.forbidden(principal)`: every string that names or quotes something the principal may not read (canary text,
  file name, document id, chunk ids, file id; other tenants' names and invisible collections' names);
- `served_routes(app)`: every (method, path) an app serves, through included routers (FastAPI's `app.routes` holds
  `_IncludedRouter` wrappers, not the `APIRoute`s), for route-coverage guards;
- `World.check(principal, response, request_text)`: fails when a forbidden string (not sent by the caller itself)
  appears anywhere in the raw response body (JSON, SSE frames, error messages alike).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from starlette.routing import Mount

from app.settings import Settings
from app.testing.api import wait_for_job

QUESTION = "What is the launch code of the archive?"
# Every reader's view of one collection fits in this top_k: a count of sources equals the count of readable chunks.
LARGE_TOP_K = 50


@dataclass(frozen=True)
class Principal:
    """An API key of the world: who it is, what it may do, and its headers."""

    name: str
    role: str
    tenant: str | None
    principals: tuple[str, ...]
    headers: dict[str, str] = field(hash=False, compare=False)

    def sees_collection(self, tenant: str | None) -> bool:
        """Tenants: an operator admin sees every tenant, other keys only their own (None: the operator's)."""
        if self.tenant is None and self.role == "admin":
            return True
        return self.tenant == tenant

    def reads(self, access: tuple[str, ...]) -> bool:
        """Access: no list is public; `*` reads every document; else the principals must meet the list."""
        return not access or "*" in self.principals or bool(set(access) & set(self.principals))


@dataclass
class Doc:
    """A seeded document: where it lives, who may read it, and every string that would reveal it."""

    label: str
    collection: str
    tenant: str | None
    access: tuple[str, ...]
    via: str  # "upload" | "job" | "file"
    canary: str
    filename: str
    document_id: str = ""
    chunk_ids: tuple[str, ...] = ()
    file_id: str | None = None
    batch_id: str | None = None  # the vector store file batch that attached the file
    job_id: str | None = None

    @property
    def text(self) -> bytes:
        return (
            f"The launch code of the {self.label} archive is {self.canary}. Keep the launch code {self.canary} "
            f"in the {self.label} register and read it back before every launch.\n"
        ).encode()

    def tokens(self) -> dict[str, str]:
        """Each revealing string -> what it is."""
        # the name without its extension: also the title and the default source id
        stem = self.filename.rsplit(".", 1)[0]
        found = {self.canary: "canary", stem: "file name", self.document_id: "document id"}
        found.update({chunk: "chunk id" for chunk in self.chunk_ids})
        if self.file_id:
            found[self.file_id] = "file id"
        return {token: f"{what} of {self.label}" for token, what in found.items() if token}


@dataclass
class World:
    client: Any
    settings: Settings
    principals: dict[str, Principal]
    collections: dict[str, str | None]  # name -> tenant
    docs: list[Doc]
    extra_keys: dict[str, Principal] = field(default_factory=dict)  # keys used only to seed (and write probes)

    def visible_collections(self, principal: Principal) -> list[str]:
        return [name for name, tenant in self.collections.items() if principal.sees_collection(tenant)]

    def readable(self, principal: Principal, collection: str | None = None) -> list[Doc]:
        return [
            doc
            for doc in self.docs
            if (collection is None or doc.collection == collection)
            and principal.sees_collection(doc.tenant)
            and principal.reads(doc.access)
        ]

    def hidden(self, principal: Principal) -> list[Doc]:
        readable = {id(doc) for doc in self.readable(principal)}
        return [doc for doc in self.docs if id(doc) not in readable]

    def forbidden(self, principal: Principal) -> dict[str, str]:
        """Every string that reveals something `principal` may not read -> what it reveals."""
        found: dict[str, str] = {}
        for doc in self.hidden(principal):
            found.update(doc.tokens())
        for name, tenant in self.collections.items():
            if not principal.sees_collection(tenant):
                found[name] = f"collection name {name} of tenant {tenant}"
                if tenant and tenant != principal.tenant:
                    found[tenant] = f"tenant name {tenant}"
        return found

    def check(self, principal: Principal, response: Any, request_text: str = "", where: str = "") -> None:
        """Fail when the response body (raw text) holds a forbidden string the request did not itself carry."""
        body = response.text if hasattr(response, "text") else str(response)
        leaked = {
            token: what
            for token, what in self.forbidden(principal).items()
            if token in body and token not in request_text
        }
        assert not leaked, f"{principal.name}: {where or 'response'} reveals {sorted(leaked.values())}:\n{body[:2000]}"

    def request(self, principal: Principal, method: str, path: str, **kwargs: Any) -> Any:
        """Send a request as `principal` and check its answer for leaks; the response."""
        response = self.client.request(method, path, headers=principal.headers, **kwargs)
        request_text = path + json.dumps(kwargs.get("json"), default=str) + json.dumps(kwargs.get("params"))
        self.check(principal, response, request_text, where=f"{method} {path}")
        return response


def create_key(
    settings: Settings,
    *,
    name: str,
    role: str,
    principals: Iterable[str] = (),
    tenant: str | None = None,
    collections: frozenset[str] | None = None,
) -> dict[str, str]:
    """Headers of a new API key with these principals and tenant (columns of the `api_keys` table)."""
    from app.composition import key_store
    from app.services.api_keys import Role

    store = key_store(settings)
    created = store.create(name=name, role=Role(role), collections=collections)
    assert created is not None
    with store.db.transaction() as db:
        db.execute(
            "UPDATE api_keys SET principals = ?, tenant = ? WHERE id = ?",
            (json.dumps(sorted(principals)), tenant, created[0].id),
        )
    return {"Authorization": f"Bearer {created[1]}"}


def _principal(settings: Settings, name: str, role: str, tenant: str | None, *principals: str) -> Principal:
    headers = create_key(settings, name=name, role=role, principals=principals, tenant=tenant)
    return Principal(name, role, tenant, tuple(principals), headers)


def _ok(response: Any, *statuses: int) -> Any:
    assert response.status_code in (statuses or (200,)), f"{response.request.url}: {response.text}"
    return response.json()


def build_world(client: Any, settings: Settings) -> World:
    """Seed the deployment behind `client` (auth on); see the module's docstring."""
    tag = uuid.uuid4().hex[:8]
    acme, globex = f"acme{tag}", f"globex{tag}"
    ops, one, two = f"leak-ops-{tag}", f"leak-one-{tag}", f"leak-two-{tag}"
    principals = {
        p.name: p
        for p in (
            _principal(settings, "operator", "admin", None, "*"),
            _principal(settings, "acme_admin", "admin", acme, "*"),
            _principal(settings, "eng", "reader", acme, "group:eng"),
            _principal(settings, "alice", "reader", acme, "user:alice"),
            _principal(settings, "bob", "reader", acme, "user:bob"),
            _principal(settings, "globex_admin", "admin", globex, "*"),
            _principal(settings, "globex_reader", "reader", globex),
            _principal(settings, "ops_reader", "reader", None),
        )
    }
    extra = {"bob_writer": _principal(settings, "bob_writer", "writer", acme, "user:bob")}
    collections = {ops: None, one: acme, two: globex}
    owner = {ops: "operator", one: "acme_admin", two: "globex_admin"}
    for name, admin in owner.items():
        _ok(client.post("/collections", json={"name": name}, headers=principals[admin].headers), 201)

    def doc(label: str, collection: str, via: str, *access: str) -> Doc:
        return Doc(
            label=label,
            collection=collection,
            tenant=collections[collection],
            access=tuple(access),
            via=via,
            canary=f"CANARY{label.upper().replace('-', '')}{uuid.uuid4().hex[:10]}",
            filename=f"{label}-{uuid.uuid4().hex[:8]}.txt",
        )

    docs = [
        doc("ops-public", ops, "upload"),
        doc("acme-public", one, "upload"),
        doc("acme-eng", one, "upload", "group:eng"),
        doc("acme-alice", one, "job", "user:alice"),
        doc("acme-file", one, "file"),
        doc("globex-public", two, "upload"),
        doc("globex-file", two, "file"),
    ]
    for item in docs:
        headers = principals[owner[item.collection]].headers
        form = {"collection": item.collection}
        if item.access:
            form["access"] = json.dumps(list(item.access))
        files = [("files", (item.filename, item.text, "text/plain"))]
        if item.via == "upload":
            body = _ok(client.post("/documents/upload", files=files, data=form, headers=headers))
            item.document_id = body["files"][0]["document_id"]
        elif item.via == "job":
            job = _ok(client.post("/documents/upload?async=true", files=files, data=form, headers=headers), 202)
            item.job_id = job["job_id"]
            done, _ = wait_for_job(_As(client, headers), job["job_id"])
            assert done["state"] == "done", done
            item.document_id = done["files"][0]["document_id"]
        else:
            created = _ok(
                client.post(
                    "/v1/files",
                    files={"file": (item.filename, item.text, "text/plain")},
                    data={"purpose": "assistants"},
                    headers=headers,
                )
            )
            item.file_id = created["id"]
            path = f"/v1/vector_stores/{item.collection}/file_batches"
            batch = _ok(client.post(path, json={"file_ids": [item.file_id]}, headers=headers))
            item.batch_id = batch["id"]
            _wait_for_batch(client, headers, f"{path}/{item.batch_id}")
    world = World(client, settings, principals, collections, docs, extra)
    _find_chunks(world)
    return world


class _As:
    """A client whose requests carry `headers` (for `wait_for_job`)."""

    def __init__(self, client: Any, headers: dict[str, str]) -> None:
        self.client, self.headers = client, headers

    def get(self, path: str) -> Any:
        return self.client.get(path, headers=self.headers)


def _wait_for_batch(client: Any, headers: dict[str, str], path: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status = _ok(client.get(path, headers=headers))["status"]
        if status != "in_progress":
            assert status == "completed", status
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} still in progress after {seconds} s")


def _find_chunks(world: World) -> None:
    """Each document's id (files: from their passages) and chunk ids, as the operator's search-only query finds them."""
    operator = world.principals["operator"]
    for collection in world.collections:
        body = {"question": QUESTION, "collection": collection, "generate": False, "top_k": LARGE_TOP_K}
        sources = _ok(world.client.post("/query", json=body, headers=operator.headers))["sources"]
        for item in (d for d in world.docs if d.collection == collection):
            mine = [s for s in sources if item.canary in s["text"]]
            assert mine, f"the operator's search finds no passage of {item.label}: {sources}"
            item.document_id = item.document_id or mine[0]["document_id"]
            item.chunk_ids = tuple(s["chunk_id"] for s in mine)


def missing_document_id() -> str:
    """An id of the documents' format (32 hex) that no document has."""
    return uuid.uuid4().hex


# Served, not API routes: the schema itself and its viewers.
FRAMEWORK_PATHS = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}


def app_routes(app: Any) -> Iterator[tuple[str | None, set[str] | None, bool]]:
    """(path, methods, in the schema) of every route, through included routers (FastAPI's `_IncludedRouter`)."""
    for route in app.routes:
        if isinstance(route, Mount):
            continue
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is not None:
            for context in contexts():
                yield context.path, set(context.methods or ()), bool(context.include_in_schema)
        else:
            methods = getattr(route, "methods", None)
            yield getattr(route, "path", None), set(methods or ()), bool(getattr(route, "include_in_schema", True))


def served_routes(app: Any) -> set[tuple[str, str]]:
    """Every (method, path) the app serves: the OpenAPI schema's operations plus the routes outside it."""
    routes = {(method.upper(), path) for path, ops in app.openapi()["paths"].items() for method in ops}
    for path, methods, in_schema in app_routes(app):
        if path is None or path in FRAMEWORK_PATHS or in_schema:
            continue
        methods = methods or {"GET", "POST", "DELETE"}  # the MCP endpoint (a plain route) takes all three
        routes |= {(method, path) for method in methods if method != "HEAD"}
    return routes
