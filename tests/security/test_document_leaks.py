"""Leak suite: every route that returns document data, called as several principals, reveals nothing the caller may
not read: no passage, canary, file name, document/chunk/file id, count, citation, source or error message.

The deployment (`app.testing.leaks.build_world`, on LanceDB and on pgvector) holds three collections: one of the
operator (no tenant), one of tenant A with a public document, one for `group:eng`, one for `user:alice` (indexed by
a background job) and a vector-store file, and one of tenant B with a public document and a file. The keys: the
operator's admin, tenant A's admin, readers with `group:eng`, `user:alice`, `user:bob` (no group), tenant B's admin
and reader, and a reader of the operator without tenant. Each case below runs for each of them and checks the raw
body of every answer (JSON, SSE frames, MCP results) against the strings of what that key may not read; answers for
a hidden id or collection must be byte-identical (ids replaced) to those for one that does not exist; counts and
result lists must hold exactly the readable items, with a top_k larger than the readable set.

`ROUTES` classifies every route of the app (the OpenAPI schema plus `/mcp` and the demo page): the leak case that
covers it, or why it returns no document data. `test_every_route_is_classified` fails when a route is added without
an entry: add a leak case (or the reason) there.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from app.testing.api import admin_headers
from app.testing.leaks import (
    LARGE_TOP_K,
    QUESTION,
    Doc,
    Principal,
    World,
    build_world,
    missing_document_id,
    served_routes,
)

PRINCIPALS = ["operator", "acme_admin", "eng", "alice", "bob", "globex_admin", "globex_reader", "ops_reader"]
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-06-18"}


# -- the route table -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Leak:
    """The route returns document data: the leak case (a key of CASES or WRITE_CASES) that calls it."""

    case: str


@dataclass(frozen=True)
class NoDocumentData:
    """The route returns no document data: why."""

    reason: str


_KEYS = NoDocumentData("API keys: names, roles, scopes, principals; no document data (tenant scoping: ten17's tests)")
_STATIC = NoDocumentData("static or constant content")
ROUTES: dict[tuple[str, str], Leak | NoDocumentData] = {
    # documents
    ("POST", "/documents/upload"): Leak("upload"),
    ("GET", "/documents"): Leak("documents"),
    ("DELETE", "/documents/{document_id}"): Leak("writes on hidden ids"),
    ("PUT", "/documents/{document_id}"): Leak("writes on hidden ids"),
    ("PATCH", "/documents/{document_id}"): Leak("writes on hidden ids"),
    # jobs: file names, document ids and errors of the files they index
    ("GET", "/jobs"): Leak("jobs"),
    ("GET", "/jobs/{job_id}"): Leak("jobs"),
    ("POST", "/jobs/{job_id}/cancel"): Leak("jobs"),
    ("POST", "/jobs/{job_id}/retry"): Leak("jobs"),
    # questions
    ("POST", "/query"): Leak("query"),
    ("POST", "/query/stream"): Leak("query stream"),
    ("POST", "/v1/chat/completions"): Leak("chat completions"),
    ("POST", "/v1/responses"): Leak("responses"),
    ("GET", "/v1/responses/{response_id}"): Leak("responses"),
    ("GET", "/v1/responses/{response_id}/input_items"): Leak("responses"),
    ("DELETE", "/v1/responses/{response_id}"): NoDocumentData("answers only the id and `deleted: true`"),
    ("POST", "/mcp"): Leak("mcp"),
    ("GET", "/mcp"): NoDocumentData("stateless JSON transport: no server-sent stream to open"),
    ("DELETE", "/mcp"): NoDocumentData("stateless JSON transport: no session to end"),
    # collections: names, tenants and counts
    ("GET", "/collections"): Leak("collections"),
    ("POST", "/collections"): Leak("collection names"),
    ("DELETE", "/collections/{name}"): Leak("writes on hidden ids"),
    # OpenAI files and vector stores
    ("POST", "/v1/files"): Leak("files"),
    ("GET", "/v1/files"): Leak("files"),
    ("GET", "/v1/files/{file_id}"): Leak("files"),
    ("GET", "/v1/files/{file_id}/content"): Leak("files"),
    ("DELETE", "/v1/files/{file_id}"): Leak("writes on hidden ids"),
    ("POST", "/v1/vector_stores"): NoDocumentData("creates a new, empty collection of the caller's (its own data)"),
    ("GET", "/v1/vector_stores"): Leak("vector stores"),
    ("GET", "/v1/vector_stores/{vector_store_id}"): Leak("vector stores"),
    ("POST", "/v1/vector_stores/{vector_store_id}"): Leak("writes on hidden ids"),
    ("DELETE", "/v1/vector_stores/{vector_store_id}"): Leak("writes on hidden ids"),
    ("POST", "/v1/vector_stores/{vector_store_id}/files"): Leak("writes on hidden ids"),
    ("GET", "/v1/vector_stores/{vector_store_id}/files"): Leak("vector stores"),
    ("GET", "/v1/vector_stores/{vector_store_id}/files/{file_id}"): Leak("vector stores"),
    ("POST", "/v1/vector_stores/{vector_store_id}/files/{file_id}"): Leak("writes on hidden ids"),
    ("DELETE", "/v1/vector_stores/{vector_store_id}/files/{file_id}"): Leak("writes on hidden ids"),
    ("POST", "/v1/vector_stores/{vector_store_id}/file_batches"): Leak("writes on hidden ids"),
    ("GET", "/v1/vector_stores/{vector_store_id}/file_batches/{batch_id}"): Leak("vector stores"),
    ("POST", "/v1/vector_stores/{vector_store_id}/file_batches/{batch_id}/cancel"): Leak("writes on hidden ids"),
    ("GET", "/v1/vector_stores/{vector_store_id}/file_batches/{batch_id}/files"): Leak("vector stores"),
    ("POST", "/v1/vector_stores/{vector_store_id}/search"): Leak("vector store search"),
    # sync sources (sync17): locations, per-file outcomes (source ids are file names), access lists
    ("POST", "/sources"): Leak("sources"),
    ("GET", "/sources"): Leak("sources"),
    ("GET", "/sources/{source_id}"): Leak("sources"),
    ("PATCH", "/sources/{source_id}"): Leak("sources"),
    ("DELETE", "/sources/{source_id}"): Leak("sources"),
    ("POST", "/sources/{source_id}/runs"): Leak("sources"),
    ("GET", "/sources/{source_id}/runs"): Leak("sources"),
    # no document data
    ("GET", "/keys"): _KEYS,
    ("POST", "/keys"): _KEYS,
    ("DELETE", "/keys/{key_id}"): _KEYS,
    ("GET", "/health"): _STATIC,
    ("GET", "/ready"): NoDocumentData("readiness of the services and stores; no collection or document"),
    ("GET", "/metrics"): Leak("metrics"),
    ("GET", "/v1/models"): NoDocumentData("the one model id"),
    ("GET", "/"): _STATIC,
}
# Entries for routes other branches of issue 17 add (acl17: PATCH, ver17: PUT, sync17: /sources). While a planned
# route is not served, its entry is allowed; once it is served, it must leave this set (the guard says so).
PLANNED: set[tuple[str, str]] = set()


def test_every_route_is_classified(tmp_path):
    """A route without an entry in ROUTES fails here: give it a leak case, or the reason it returns no documents."""
    served = served_routes(create_app(Settings(data_dir=tmp_path / "data")))
    missing = sorted(served - ROUTES.keys())
    assert not missing, (
        f"routes without a leak classification: {missing}. If a route returns document data (text, file names, "
        "document/chunk/file ids, counts), add a leak case to tests/security/test_document_leaks.py and map the "
        "route to it in ROUTES; otherwise map it to NoDocumentData(<why>)."
    )
    stale = sorted(ROUTES.keys() - served - PLANNED)
    assert not stale, f"ROUTES names routes the app does not serve (renamed or removed?): {stale}"
    live = sorted(PLANNED & served)
    assert not live, f"these planned routes are served now: remove them from PLANNED: {live}"
    cases = {entry.case for entry in ROUTES.values() if isinstance(entry, Leak)}
    unknown = cases - CASES.keys() - WRITE_CASES.keys()
    assert not unknown, f"ROUTES names leak cases that do not exist: {unknown}"


def test_the_guard_catches_a_new_route(tmp_path):
    """The guard is not vacuous: an app with one more route has an unclassified route."""
    app = create_app(Settings(data_dir=tmp_path / "data"))

    @app.get("/documents/{document_id}/text")
    async def document_text(document_id: str) -> dict[str, str]:
        return {"text": document_id}

    assert sorted(served_routes(app) - ROUTES.keys()) == [("GET", "/documents/{document_id}/text")]


# -- the deployment --------------------------------------------------------------------------------------------------

STORE_PROFILES = [
    pytest.param("default", id="lancedb"),
    pytest.param("pgvector", id="pgvector", marks=pytest.mark.postgres),
]


@pytest.fixture(scope="module", params=STORE_PROFILES)
def store_profile(request) -> Iterator[str]:
    if request.param == "pgvector":
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("PG_CONN_STR", request.getfixturevalue("pg_dsn"))
            yield request.param
    else:
        yield request.param


@pytest.fixture(scope="module")
def world(tmp_path_factory, make_tiny_profile, store_profile) -> Iterator[World]:
    root = tmp_path_factory.mktemp("leaks")
    settings = Settings(
        data_dir=root / "data",
        pipelines_dir=make_tiny_profile(root / "pipelines", profile=store_profile),
        rate_limit="off",
    )
    admin_headers(settings.data_dir)  # the store's first key: no bootstrap key is written
    with TestClient(create_app(settings)) as client:
        yield build_world(client, settings)


@pytest.fixture(scope="module")
def stored_responses(world) -> dict[str, str]:
    """A stored Responses answer of `eng` that quotes the eng-only document (another key must not read it back)."""
    eng = world.principals["eng"]
    collection = _tenant_a(world)
    created = world.client.post("/v1/responses", json=_responses_body(collection), headers=eng.headers)
    assert created.status_code == 200, created.text
    assert _doc(world, "acme-eng").canary in created.text, created.text
    return {"eng": created.json()["id"]}


@pytest.fixture(scope="module")
def sync_source(world, tmp_path_factory) -> dict[str, str] | None:
    """A folder source of tenant A's collection, access `["group:eng"]`, synced once (None without /sources).

    Written against the contract of issue 17 (`POST /sources` with collection, kind, location, access; `POST
    /sources/{id}/runs`); adjust the body here if the merged API names its fields otherwise."""
    if ("GET", "/sources") not in served_routes(world.client.app):
        return None
    folder = world.settings.data_dir / "sources" / f"leak-{uuid.uuid4().hex[:8]}"  # within RAG_SYNC_ROOTS' default
    folder.mkdir(parents=True)
    (folder / f"synced-{uuid.uuid4().hex[:8]}.txt").write_text("The synced register of the launch code.\n")
    body = {"collection": _tenant_a(world), "kind": "folder", "location": str(folder), "access": ["group:eng"]}
    created = world.client.post("/sources", json=body, headers=world.principals["acme_admin"].headers)
    assert created.status_code in (200, 201), f"POST /sources {body}: {created.text}"
    source_id = created.json()["id"]
    synced = world.client.post(f"/sources/{source_id}/runs", headers=world.principals["acme_admin"].headers)
    assert synced.status_code in (200, 202), synced.text
    return {"id": source_id, "location": str(folder)}


# -- helpers ---------------------------------------------------------------------------------------------------------


def _doc(world: World, label: str) -> Doc:
    return next(d for d in world.docs if d.label == label)


def _tenant_a(world: World) -> str:
    return _doc(world, "acme-public").collection


def _missing_collection() -> str:
    return f"leak-nil-{uuid.uuid4().hex[:8]}"


def same_as_missing(
    world: World, principal: Principal, hidden: str, missing: str, send: Callable[[str], Any], where: str
) -> Any:
    """Call `send` with a hidden value and with one that does not exist: the same status, the same body (each value
    replaced by a placeholder), and nothing forbidden in it."""
    shown, absent = send(hidden), send(missing)
    world.check(principal, shown, hidden, where)
    differs = shown.text.replace(hidden, "<x>") != absent.text.replace(missing, "<x>")
    if differs and hidden in world.collections and principal.tenant is None and principal.role != "admin":
        # Names are global (docs/security.md, Tenants): for a key without tenant, a missing collection reads as an
        # empty one (200) while a tenant's answers "does not exist" (404); the answer tells the name is taken (as a
        # 409 on creating it does), never what the collection holds (checked above).
        assert "does not exist" in shown.text, f"{principal.name}: {where}: {shown.text[:1000]}"
        return shown
    assert shown.status_code == absent.status_code, (
        f"{principal.name}: {where} answers {shown.status_code} for a hidden {hidden!r}, {absent.status_code} for a "
        f"missing one:\n{shown.text[:1000]}\n---\n{absent.text[:1000]}"
    )
    assert shown.text.replace(hidden, "<x>") == absent.text.replace(missing, "<x>"), (
        f"{principal.name}: {where} answers a hidden {hidden!r} unlike a missing one:\n{shown.text}\n---\n{absent.text}"
    )
    return shown


def readable_chunks(world: World, principal: Principal, collection: str) -> set[str]:
    return {chunk for doc in world.readable(principal, collection) for chunk in doc.chunk_ids}


def _search(collection: str, top_k: int, generate: bool = False) -> dict[str, Any]:
    return {"question": QUESTION, "collection": collection, "generate": generate, "top_k": top_k}


def _chat_body(collection: str, stream: bool) -> dict[str, Any]:
    return {
        "model": "rag",
        "messages": [{"role": "user", "content": QUESTION}],
        "collection": collection,
        "top_k": LARGE_TOP_K,
        "stream": stream,
    }


def _responses_body(collection: str, **extra: Any) -> dict[str, Any]:
    tool = {"type": "file_search", "vector_store_ids": [collection], "max_num_results": LARGE_TOP_K}
    return {"model": "rag", "input": QUESTION, "tools": [tool], "include": ["file_search_call.results"], **extra}


def _escaping_filters(world: World, p: Principal, collection: str) -> list[dict[str, Any]]:
    """Haystack filters that try to reach hidden documents: by id, and ORs over the access and tenant fields."""
    hidden = [d for d in world.hidden(p) if d.collection == collection]
    by_id = [{"field": "meta.document_id", "operator": "==", "value": d.document_id} for d in hidden]
    widening = {
        "operator": "OR",
        "conditions": [
            {"field": "meta.acl", "operator": "!=", "value": "public"},
            {"field": "meta.tenant", "operator": "!=", "value": p.tenant or ""},
            {"field": "meta.collection", "operator": "==", "value": collection},
        ],
    }
    return [*by_id, widening]


def _chunk_ids(text: str) -> set[str]:
    """The chunk ids a JSON or SSE body names."""
    return set(re.findall(r'"chunk_id": ?"([^"]+)"', text))


def mcp(world: World, principal: Principal, tool: str, arguments: dict[str, Any]) -> Any:
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}
    response = world.client.post("/mcp", json=call, headers={**principal.headers, **MCP_HEADERS})
    world.check(principal, response, json.dumps(arguments), where=f"MCP {tool}")
    assert response.status_code == 200, response.text
    return response


# -- the leak cases (read-only: they leave the world as it was) -------------------------------------------------------


def case_documents(world: World, p: Principal) -> None:
    for collection in world.collections:
        if collection not in world.visible_collections(p):
            same_as_missing(
                world,
                p,
                collection,
                _missing_collection(),
                lambda c: world.client.get("/documents", params={"collection": c}, headers=p.headers),
                "GET /documents",
            )
            continue
        readable = world.readable(p, collection)
        page = world.request(p, "GET", "/documents", params={"collection": collection, "limit": 500}).json()
        assert page["total"] == len(readable), page
        assert sorted(d["document_id"] for d in page["documents"]) == sorted(d.document_id for d in readable)
        for offset in range(len(readable) + 1):  # one at a time: the total stays the readable count
            one = world.request(
                p, "GET", "/documents", params={"collection": collection, "limit": 1, "offset": offset}
            ).json()
            assert one["total"] == len(readable), one


def case_collections(world: World, p: Principal) -> None:
    listed = {c["name"]: c for c in world.request(p, "GET", "/collections").json()}
    for collection in world.collections:
        if collection not in world.visible_collections(p):
            assert collection not in listed
            continue
        readable = world.readable(p, collection)
        assert listed[collection]["documents"] == len(readable), listed[collection]
        assert listed[collection]["chunks"] == sum(len(d.chunk_ids) for d in readable), listed[collection]


def case_query(world: World, p: Principal) -> None:
    for collection in world.collections:
        if collection not in world.visible_collections(p):
            same_as_missing(
                world,
                p,
                collection,
                _missing_collection(),
                lambda c: world.client.post("/query", json=_search(c, LARGE_TOP_K), headers=p.headers),
                "POST /query",
            )
            continue
        expected = readable_chunks(world, p, collection)
        every = world.request(p, "POST", "/query", json=_search(collection, LARGE_TOP_K))
        assert _chunk_ids(every.text) == expected, every.text  # top_k beyond the readable set: exactly those
        first = world.request(p, "POST", "/query", json=_search(collection, 1)).json()["sources"]
        assert len(first) == min(1, len(expected)) and {s["chunk_id"] for s in first} <= expected, first
        for filters in _escaping_filters(world, p, collection):  # a caller's filter narrows, never widens
            narrowed = world.request(p, "POST", "/query", json={**_search(collection, LARGE_TOP_K), "filters": filters})
            assert narrowed.status_code in (200, 400), narrowed.text
            assert _chunk_ids(narrowed.text) <= expected, narrowed.text
    answered = world.request(p, "POST", "/query", json=_search(world.visible_collections(p)[0], LARGE_TOP_K, True))
    assert answered.status_code == 200, answered.text


def case_query_stream(world: World, p: Principal) -> None:
    for collection in world.collections:
        if collection not in world.visible_collections(p):
            same_as_missing(
                world,
                p,
                collection,
                _missing_collection(),
                lambda c: world.client.post("/query/stream", json=_search(c, LARGE_TOP_K, True), headers=p.headers),
                "POST /query/stream",
            )
    for collection in world.visible_collections(p)[:2]:
        streamed = world.request(p, "POST", "/query/stream", json=_search(collection, LARGE_TOP_K, True))
        assert streamed.status_code == 200 and "event: sources" in streamed.text, streamed.text
        assert _chunk_ids(streamed.text) <= readable_chunks(world, p, collection), streamed.text


def case_chat_completions(world: World, p: Principal) -> None:
    for collection in world.collections:
        if collection not in world.visible_collections(p):
            same_as_missing(
                world,
                p,
                collection,
                _missing_collection(),
                lambda c: world.client.post("/v1/chat/completions", json=_chat_body(c, False), headers=p.headers),
                "POST /v1/chat/completions",
            )
    collection = world.visible_collections(p)[0]
    for stream in (False, True):
        answered = world.request(p, "POST", "/v1/chat/completions", json=_chat_body(collection, stream))
        assert answered.status_code == 200, answered.text
        assert _chunk_ids(answered.text) <= readable_chunks(world, p, collection), answered.text


def case_responses(world: World, p: Principal, stored: dict[str, str]) -> None:
    for collection in world.collections:
        if collection not in world.visible_collections(p):
            same_as_missing(
                world,
                p,
                collection,
                _missing_collection(),
                lambda c: world.client.post("/v1/responses", json=_responses_body(c), headers=p.headers),
                "POST /v1/responses",
            )
    collection = world.visible_collections(p)[0]
    for stream in (False, True):
        body = _responses_body(collection, stream=stream, store=False)
        answered = world.request(p, "POST", "/v1/responses", json=body)
        assert answered.status_code == 200, answered.text
    # eng's stored answer quotes the eng-only document: read back, or continued, by another key
    eng_response = stored["eng"]
    world.request(p, "GET", f"/v1/responses/{eng_response}")
    world.request(p, "GET", f"/v1/responses/{eng_response}/input_items")
    if _tenant_a(world) in world.visible_collections(p):
        follow_up = _responses_body(_tenant_a(world), previous_response_id=eng_response, store=False)
        world.request(p, "POST", "/v1/responses", json=follow_up)


SEARCH_PATH = "/v1/vector_stores/{}/search"


def case_vector_store_search(world: World, p: Principal) -> None:
    body = {"query": QUESTION, "max_num_results": LARGE_TOP_K}
    for collection in world.collections:
        path = SEARCH_PATH
        if collection not in world.visible_collections(p):
            same_as_missing(
                world,
                p,
                collection,
                _missing_collection(),
                lambda c: world.client.post(SEARCH_PATH.format(c), json=body, headers=p.headers),
                f"POST {SEARCH_PATH}",
            )
            continue
        found = world.request(p, "POST", path.format(collection), json=body)
        assert _chunk_ids(found.text) == readable_chunks(world, p, collection), found.text


def case_vector_stores(world: World, p: Principal) -> None:
    listed = {s["id"]: s for s in world.request(p, "GET", "/v1/vector_stores", params={"limit": 100}).json()["data"]}
    for collection in world.collections:
        files = [d for d in world.readable(p, collection) if d.via == "file"]
        if collection not in world.visible_collections(p):
            assert collection not in listed
            for template in ("/v1/vector_stores/{}", "/v1/vector_stores/{}/files"):
                same_as_missing(
                    world,
                    p,
                    collection,
                    _missing_collection(),
                    lambda c, t=template: world.client.get(t.format(c), headers=p.headers),
                    f"GET {template}",
                )
            continue
        assert listed[collection]["file_counts"]["total"] == len(files), listed[collection]
        store = world.request(p, "GET", f"/v1/vector_stores/{collection}").json()
        assert store["file_counts"]["total"] == len(files), store
        page = world.request(p, "GET", f"/v1/vector_stores/{collection}/files", params={"limit": 100}).json()
        assert sorted(f["id"] for f in page["data"]) == sorted(str(d.file_id) for d in files), page
    for doc in (d for d in world.docs if d.via == "file"):
        file_path = f"/v1/vector_stores/{doc.collection}/files/{doc.file_id}"
        batch_path = f"/v1/vector_stores/{doc.collection}/file_batches/{doc.batch_id}"
        if doc in world.readable(p):
            assert world.request(p, "GET", file_path).status_code == 200
            assert world.request(p, "GET", batch_path).status_code == 200
            assert world.request(p, "GET", f"{batch_path}/files").json()["data"][0]["id"] == doc.file_id
            continue
        missing_store = _missing_collection()
        for path in (file_path, batch_path, f"{batch_path}/files"):
            same_as_missing(
                world,
                p,
                doc.collection,
                missing_store,
                lambda c, path=path, doc=doc: world.client.get(path.replace(doc.collection, c), headers=p.headers),
                f"GET {path}",
            )


def case_files(world: World, p: Principal) -> None:
    world.request(p, "GET", "/v1/files", params={"limit": 100})
    for doc in (d for d in world.docs if d.via == "file"):
        assert doc.file_id
        for template in ("/v1/files/{}", "/v1/files/{}/content"):
            if doc in world.readable(p):
                assert world.request(p, "GET", template.format(doc.file_id)).status_code == 200
            else:
                same_as_missing(
                    world,
                    p,
                    doc.file_id,
                    f"file-{uuid.uuid4().hex[:24]}",
                    lambda f, t=template: world.client.get(t.format(f), headers=p.headers),
                    f"GET {template}",
                )


def case_jobs(world: World, p: Principal) -> None:
    world.request(p, "GET", "/jobs", params={"limit": 100})
    for collection in world.collections:
        if collection in world.visible_collections(p):
            world.request(p, "GET", "/jobs", params={"collection": collection, "limit": 100})
    job = _doc(world, "acme-alice")
    assert job.job_id
    if job in world.readable(p):
        assert world.request(p, "GET", f"/jobs/{job.job_id}").status_code == 200
        return
    for template, method in (("/jobs/{}", "GET"), ("/jobs/{}/cancel", "POST"), ("/jobs/{}/retry", "POST")):
        response = world.request(p, method, template.format(job.job_id))
        if job.collection not in world.visible_collections(p):
            same_as_missing(
                world,
                p,
                job.job_id,
                uuid.uuid4().hex,
                lambda j, t=template, m=method: world.client.request(m, t.format(j), headers=p.headers),
                f"{method} {template}",
            )
        else:
            assert response.status_code in (200, 403, 404, 409), response.text


def case_mcp(world: World, p: Principal) -> None:
    for collection in world.collections:
        if collection not in world.visible_collections(p):
            shown = mcp(world, p, "search", {"query": QUESTION, "collection": collection, "top_k": LARGE_TOP_K})
            missing = _missing_collection()
            absent = mcp(world, p, "search", {"query": QUESTION, "collection": missing, "top_k": LARGE_TOP_K})
            world.check(p, shown, collection, "MCP search")
            if p.tenant is None and p.role != "admin":  # names are global: see same_as_missing
                assert "does not exist" in shown.text, shown.text
            else:
                assert shown.text.replace(collection, "<x>") == absent.text.replace(missing, "<x>"), shown.text
            continue
        found = mcp(world, p, "search", {"query": QUESTION, "collection": collection, "top_k": LARGE_TOP_K})
        assert _chunk_ids(found.text) == readable_chunks(world, p, collection), found.text
    missing_id = missing_document_id()
    absent = mcp(world, p, "fetch", {"document_id": missing_id}).text
    for doc in world.docs:
        fetched = mcp(world, p, "fetch", {"document_id": doc.document_id}).text
        if doc in world.readable(p):
            assert doc.canary in fetched, fetched
        else:
            assert fetched.replace(doc.document_id, "<x>") == absent.replace(missing_id, "<x>"), fetched
    mcp(world, p, "answer", {"question": QUESTION, "collection": world.visible_collections(p)[0], "top_k": 50})


def case_collection_names(world: World, p: Principal) -> None:
    """Creating a collection another tenant holds: a 409 like one of the caller's own tenant, naming no tenant."""
    own = world.visible_collections(p)[0]
    for collection in world.collections:
        same_as_missing(
            world,
            p,
            collection,
            own,
            lambda c: world.client.post("/collections", json={"name": c}, headers=p.headers),
            "POST /collections (a taken name)",
        )


def case_metrics(world: World, p: Principal) -> None:
    world.request(p, "GET", "/metrics")


def case_sources(world: World, p: Principal, sources: dict[str, str] | None) -> None:
    """Tenant A's sync source (a folder whose file names are source ids): absent from other tenants' lists, answered
    by id as one that does not exist, and so are its runs."""
    if sources is None:
        pytest.skip("the app serves no /sources (sync17)")
    source_id, location = sources["id"], sources["location"]
    listed = world.request(p, "GET", "/sources")
    if _tenant_a(world) in world.visible_collections(p):
        return
    assert source_id not in listed.text and location not in listed.text, listed.text
    missing = f"src_{uuid.uuid4().hex[:24]}"
    for template in ("/sources/{}", "/sources/{}/runs"):
        same_as_missing(
            world,
            p,
            source_id,
            missing,
            lambda s, t=template: world.client.get(t.format(s), headers=p.headers),
            f"GET {template}",
        )


CASES: dict[str, Callable[..., None]] = {
    "documents": case_documents,
    "collections": case_collections,
    "query": case_query,
    "query stream": case_query_stream,
    "chat completions": case_chat_completions,
    "responses": case_responses,
    "vector store search": case_vector_store_search,
    "vector stores": case_vector_stores,
    "files": case_files,
    "jobs": case_jobs,
    "mcp": case_mcp,
    "collection names": case_collection_names,
    "metrics": case_metrics,
    "sources": case_sources,
}


@pytest.mark.integration
@pytest.mark.parametrize("principal", PRINCIPALS)
@pytest.mark.parametrize("case", CASES)
def test_no_route_reveals_a_document_the_caller_may_not_read(request, world, stored_responses, case, principal):
    p = world.principals[principal]
    if case == "responses":
        case_responses(world, p, stored_responses)
    elif case == "sources":
        case_sources(world, p, request.getfixturevalue("sync_source"))
    else:
        CASES[case](world, p)


# -- writes on hidden ids and uploads (last: when a check fails, they may change the world) -------------------------


def case_upload(world: World, p: Principal) -> None:
    """An upload never confirms a document the writer may not read: the same bytes as a hidden document, or new bytes
    under a hidden document's file name (its source id), are a new document of the writer's, not a `duplicate` of it
    nor an `updated` version of it (nor a 409 saying the name is taken)."""
    for doc in world.hidden(p):
        if doc.collection not in world.visible_collections(p):
            continue
        same_bytes = [("files", (f"copy-{uuid.uuid4().hex[:6]}.txt", doc.text, "text/plain"))]
        copied = world.client.post(
            "/documents/upload", files=same_bytes, data={"collection": doc.collection}, headers=p.headers
        )
        # the same bytes under another access list are a document of their own, as if the hidden one did not exist
        world.check(p, copied, doc.canary, "POST /documents/upload (the bytes of a hidden document)")
        [copy] = copied.json()["files"]
        assert copy["status"] == "indexed" and copy["document_id"] != doc.document_id, copied.text
        own = world.client.get("/documents", params={"collection": doc.collection, "limit": 500}, headers=p.headers)
        assert copy["document_id"] in own.text, own.text  # the writer's copy is its own to read
        gone = world.client.delete(f"/documents/{copy['document_id']}", headers=p.headers)  # others must not see it
        assert gone.status_code == 200, gone.text
        # under a hidden document's file name (its source id): a new document of the writer's own, as if the hidden
        # one did not exist; the next upload of that name is a version of the writer's document, never of the hidden
        mine = []
        for round_ in range(2):
            renamed = [("files", (doc.filename, b"Other text. " + uuid.uuid4().hex.encode(), "text/plain"))]
            replaced = world.client.post(
                "/documents/upload", files=renamed, data={"collection": doc.collection}, headers=p.headers
            )
            world.check(p, replaced, doc.filename, "POST /documents/upload (a hidden document's file name)")
            [own] = replaced.json()["files"]
            assert (own["status"], own["version"], own["source_id"]) == (
                ("indexed", 1, doc.filename) if round_ == 0 else ("updated", 2, doc.filename)
            ), replaced.text
            assert own["document_id"] != doc.document_id, replaced.text
            mine.append(own["document_id"])
        assert mine[0] == mine[1], mine
        listed_own = world.client.get(
            "/documents", params={"collection": doc.collection, "limit": 500}, headers=p.headers
        ).json()["documents"]
        assert [d["source_id"] for d in listed_own if d["document_id"] == mine[0]] == [doc.filename], listed_own
        assert world.client.delete(f"/documents/{mine[0]}", headers=p.headers).status_code == 200
        listed = world.client.get(  # and the hidden document is as it was
            "/documents",
            params={"collection": doc.collection, "limit": 500},
            headers=world.principals["operator"].headers,
        ).json()["documents"]
        assert [d["version"] for d in listed if d["document_id"] == doc.document_id] == [1], listed


def case_writes_on_hidden_ids(world: World, p: Principal) -> None:
    """Writes naming a hidden document, file, collection or vector store answer as for one that does not exist (and
    so change nothing)."""
    hidden = world.hidden(p)
    for doc in hidden:
        replacement = ("new.txt", b"Replaced text " + uuid.uuid4().hex.encode(), "text/plain")
        writes: list[tuple[str, dict[str, Any]]] = [
            ("PATCH", {"json": {"access": []}}),
            ("PUT", {"files": [("file", replacement), ("files", replacement)]}),  # one field or the other
            ("DELETE", {}),
        ]
        for method, kwargs in writes:
            same_as_missing(
                world,
                p,
                doc.document_id,
                missing_document_id(),
                lambda d, m=method, k=kwargs: world.client.request(m, f"/documents/{d}", headers=p.headers, **k),
                f"{method} /documents/{{document_id}}",
            )
    missing_file = f"file-{uuid.uuid4().hex[:24]}"
    for doc in (d for d in hidden if d.via == "file"):
        assert doc.file_id
        same_as_missing(
            world,
            p,
            doc.file_id,
            missing_file,
            lambda f: world.client.delete(f"/v1/files/{f}", headers=p.headers),
            "DELETE /v1/files/{file_id}",
        )
    for collection in (c for c in world.collections if c not in world.visible_collections(p)):
        store = "/v1/vector_stores/{}"
        writes: list[tuple[str, str, Any]] = [
            ("POST", store, {"metadata": {"k": "v"}}),
            ("POST", store + "/files", {"file_id": missing_file}),
            ("POST", store + f"/files/{missing_file}", {"attributes": {"a": 1}}),
            ("DELETE", store + f"/files/{missing_file}", None),
            ("POST", store + "/file_batches", {"file_ids": [missing_file]}),
            ("POST", store + "/file_batches/vsfb_missing/cancel", None),
            ("DELETE", store, None),
            ("DELETE", "/collections/{}", None),
        ]
        for method, template, body in writes:
            same_as_missing(
                world,
                p,
                collection,
                _missing_collection(),
                lambda c, m=method, t=template, b=body: world.client.request(m, t.format(c), json=b, headers=p.headers),
                f"{method} {template}",
            )


WRITE_CASES: dict[str, Callable[[World, Principal], None]] = {
    "upload": case_upload,
    "writes on hidden ids": case_writes_on_hidden_ids,
}
# Keys that may write where hidden documents are: tenant admins (other tenants' ids) and a writer with `user:bob`.
WRITERS = {"upload": ["bob_writer"], "writes on hidden ids": ["acme_admin", "globex_admin", "bob_writer"]}


@pytest.mark.integration
@pytest.mark.parametrize(("case", "principal"), [(case, key) for case, keys in WRITERS.items() for key in keys])
def test_no_write_reveals_or_changes_a_document_the_caller_may_not_read(world, case, principal):
    p = world.principals.get(principal) or world.extra_keys[principal]
    WRITE_CASES[case](world, p)
