"""Per-document access over the REST API, on both stores (LanceDB and pgvector): a key reads the documents without
access list and those whose list names one of its principals, never the others: not through top_k, counts,
listings, lookups by id, jobs or stored responses. Chunks indexed before access lists existed are public, and
`PATCH /documents/{id}` changes who reads a document."""

from __future__ import annotations

import json
import uuid

import pytest
from haystack import Document

from app.services.access import EVERYONE
from app.testing.api import admin_headers, wait_for_job

pytestmark = pytest.mark.integration

QUESTION = "What does the lighthouse keeper log at dusk?"
TEXTS = {
    "public": "The lighthouse keeper logs the public weather report at dusk.",
    "eng": "The lighthouse keeper logs the engineering lamp voltage at dusk.",
    "hr": "The lighthouse keeper logs the staff salary review at dusk.",
    "bob": "The lighthouse keeper logs the private diary of Bob at dusk.",
}
ACCESS = {"public": None, "eng": ["group:eng"], "hr": ["group:hr"], "bob": ["user:bob"]}


def _upload(client, collection: str, name: str, *, headers=None, run_async: bool = False):
    data = {"collection": collection}
    if ACCESS[name] is not None:
        data["access"] = json.dumps(ACCESS[name])
    files = [("files", (f"{name}.txt", TEXTS[name].encode(), "text/plain"))]
    params = {"async": "true"} if run_async else None
    return client.post("/documents/upload", files=files, data=data, params=params, headers=headers)


@pytest.fixture(scope="module")
def corpus(client):
    """One collection with a public document and three restricted ones; their document ids by name."""
    collection = f"acl-{uuid.uuid4().hex[:8]}"
    ids = {}
    for name in TEXTS:
        response = _upload(client, collection, name)
        assert response.status_code == 200, response.text
        assert response.json()["files"][0]["status"] == "indexed"
        ids[name] = response.json()["files"][0]["document_id"]
    return collection, ids


@pytest.fixture(scope="module")
def eng(api_settings):
    return admin_headers(api_settings.data_dir, role="writer", principals=["group:eng"])


@pytest.fixture(scope="module")
def nobody(api_settings):
    return admin_headers(api_settings.data_dir, role="reader", principals=[])


def _search(client, collection, headers, top_k=20):
    body = {"question": QUESTION, "collection": collection, "generate": False, "top_k": top_k}
    response = client.post("/query", json=body, headers=headers)
    assert response.status_code == 200, response.text
    return {s["document_id"] for s in response.json()["sources"]}


def test_a_group_reads_its_documents_and_public_ones_never_others_even_with_a_large_top_k(client, corpus, eng):
    collection, ids = corpus
    assert _search(client, collection, eng) == {ids["public"], ids["eng"]}
    assert _search(client, collection, None) == set(ids.values())  # the suite's admin key holds `*`


def test_a_key_without_principals_reads_public_documents_only(client, corpus, nobody):
    collection, ids = corpus
    assert _search(client, collection, nobody) == {ids["public"]}
    search = client.post(
        f"/v1/vector_stores/{collection}/search", json={"query": QUESTION, "max_num_results": 20}, headers=nobody
    )
    assert search.status_code == 200, search.text
    assert {hit["document_id"] for hit in search.json()["data"]} == {ids["public"]}


def test_listings_and_counts_hold_only_the_readable_documents(client, corpus, eng):
    collection, ids = corpus
    listing = client.get("/documents", params={"collection": collection, "limit": 500}, headers=eng).json()
    assert listing["total"] == 2
    assert {d["document_id"] for d in listing["documents"]} == {ids["public"], ids["eng"]}
    assert {d["document_id"]: d["access"] for d in listing["documents"]}[ids["eng"]] == ["group:eng"]
    counted = {c["name"]: c for c in client.get("/collections", headers=eng).json()}[collection]
    assert counted["documents"] == 2
    everything = {c["name"]: c for c in client.get("/collections").json()}[collection]
    assert everything["documents"] == 4 and everything["chunks"] > counted["chunks"]


def test_a_document_the_key_may_not_read_is_404_for_its_id(client, corpus, eng):
    _, ids = corpus
    for call in (
        lambda: client.delete(f"/documents/{ids['hr']}", headers=eng),
        lambda: client.patch(f"/documents/{ids['hr']}", json={"access": ["group:eng"]}, headers=eng),
    ):
        response = call()
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "not_found"
        assert "hr.txt" not in response.text
    assert client.get("/documents", params={"collection": corpus[0]}).json()["total"] == 4  # nothing was deleted


def test_patch_changes_who_reads_a_document(client, corpus, eng, nobody):
    collection, ids = corpus
    changed = client.patch(f"/documents/{ids['bob']}", json={"access": ["group:eng", "user:bob"]})
    assert changed.status_code == 200, changed.text
    assert changed.json()["access"] == ["group:eng", "user:bob"] and changed.json()["updated_chunks"] >= 1
    assert ids["bob"] in _search(client, collection, eng)
    assert ids["bob"] not in _search(client, collection, nobody)
    assert client.patch(f"/documents/{ids['bob']}", json={"access": []}, headers=eng).status_code == 200
    assert ids["bob"] in _search(client, collection, nobody)
    assert client.patch(f"/documents/{ids['bob']}", json={"access": ["user:bob"]}).status_code == 200
    assert ids["bob"] not in _search(client, collection, eng)
    bad = client.patch(f"/documents/{ids['bob']}", json={"access": ["bob"]})
    assert bad.status_code == 400 and "principal" in bad.json()["error"]["message"]


def test_chunks_indexed_before_access_lists_are_public(client, corpus, nobody):
    collection, _ = corpus
    store = client.app.state.rag.pipelines.document_store
    embedder_dim = 384
    legacy = Document(
        id=f"legacy-{uuid.uuid4().hex}",
        content="The lighthouse keeper logs the legacy tide table at dusk.",
        embedding=[0.01] * embedder_dim,
        meta={"collection": collection, "document_id": "legacy-doc", "file_name": "legacy.txt"},
    )
    store.write_documents([legacy])
    listing = client.get("/documents", params={"collection": collection, "limit": 500}, headers=nobody).json()
    assert "legacy-doc" in {d["document_id"] for d in listing["documents"]}
    assert "legacy-doc" in _search(client, collection, nobody)


def test_a_job_with_an_access_list_exists_only_for_its_readers(client, api_settings, eng, nobody):
    collection = f"acl-jobs-{uuid.uuid4().hex[:8]}"
    submitted = _upload(client, collection, "eng", headers=eng, run_async=True)
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["job_id"]
    job, _ = wait_for_job(client, job_id)
    assert job["state"] == "done", job
    assert client.get(f"/jobs/{job_id}", headers=eng).status_code == 200
    assert client.get(f"/jobs/{job_id}", headers=nobody).status_code == 404
    listed = client.get("/jobs", params={"collection": collection}, headers=nobody).json()
    assert listed["total"] == 0 and listed["jobs"] == []
    assert client.get("/jobs", params={"collection": collection}, headers=eng).json()["total"] == 1
    document_id = job["files"][0]["document_id"]
    assert _search(client, collection, eng) == {document_id}
    assert _search(client, collection, nobody) == set()


def test_keys_carry_principals_and_a_caller_grants_only_its_own(client, eng, api_settings):
    created = client.post("/keys", json={"name": "bob", "role": "reader", "principals": ["user:bob", "group:eng"]})
    assert created.status_code == 201, created.text
    assert created.json()["principals"] == ["group:eng", "user:bob"]
    listed = {k["id"]: k for k in client.get("/keys").json()}
    assert listed[created.json()["id"]]["principals"] == ["group:eng", "user:bob"]
    bad = client.post("/keys", json={"name": "x", "role": "reader", "principals": ["eng"]})
    assert bad.status_code == 400 and "principal" in bad.json()["error"]["message"]
    eng_admin = admin_headers(api_settings.data_dir, principals=["group:eng"])
    own = client.post("/keys", json={"name": "e", "role": "reader", "principals": ["group:eng"]}, headers=eng_admin)
    assert own.status_code == 201, own.text
    for wider in (["group:hr"], [EVERYONE]):
        refused = client.post("/keys", json={"name": "w", "role": "reader", "principals": wider}, headers=eng_admin)
        assert refused.status_code == 403, refused.text


def test_a_stored_response_is_not_shown_to_a_key_that_reads_less(client, corpus, nobody):
    collection, _ = corpus
    tool = {"type": "file_search", "vector_store_ids": [collection], "max_num_results": 5}
    created = client.post("/v1/responses", json={"model": "rag", "input": QUESTION, "tools": [tool]})
    assert created.status_code == 200, created.text
    response_id = created.json()["id"]
    assert client.get(f"/v1/responses/{response_id}").status_code == 200
    hidden = client.get(f"/v1/responses/{response_id}", headers=nobody)
    assert hidden.status_code == 404, hidden.text
    follow_up = {"model": "rag", "input": "and then?", "tools": [tool], "previous_response_id": response_id}
    assert client.post("/v1/responses", json=follow_up, headers=nobody).status_code == 404


def test_an_upload_under_a_hidden_documents_name_is_a_document_of_the_writers_own(client, corpus, eng, api_settings):
    """The source id `hr.txt` is a document `eng` may not read: `eng`'s upload of that name (in a job as inline) is a
    source of its own, so it neither replaces the hidden document nor learns that it exists; the next upload of the
    name is a version of `eng`'s document."""
    collection, ids = corpus
    files = [("files", ("hr.txt", b"Engineering notes on the lamp. " + uuid.uuid4().hex.encode(), "text/plain"))]
    first = client.post("/documents/upload", files=files, data={"collection": collection}, headers=eng)
    assert first.status_code == 200, first.text
    [own] = first.json()["files"]
    assert (own["status"], own["version"], own["source_id"]) == ("indexed", 1, "hr.txt")
    assert own["document_id"] != ids["hr"]
    files = [("files", ("hr.txt", b"Engineering notes, second edition. " + uuid.uuid4().hex.encode(), "text/plain"))]
    submitted = client.post(
        "/documents/upload", files=files, data={"collection": collection}, params={"async": "true"}, headers=eng
    )
    assert submitted.status_code == 202, submitted.text
    job, _ = wait_for_job(client, submitted.json()["job_id"])
    [again] = job["files"]
    assert (again["status"], again["version"], again["source_id"]) == ("updated", 2, "hr.txt"), job
    assert again["document_id"] == own["document_id"]
    hr = admin_headers(api_settings.data_dir, role="reader", principals=["group:hr"])
    listed = client.get("/documents", params={"collection": collection, "limit": 500}, headers=hr).json()["documents"]
    assert [(d["source_id"], d["version"]) for d in listed if d["document_id"] == ids["hr"]] == [("hr.txt", 1)]
    assert client.delete(f"/documents/{own['document_id']}", headers=eng).status_code == 200
