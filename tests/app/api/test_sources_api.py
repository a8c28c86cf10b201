"""`/sources` over HTTP: register a folder, run it (a job of the embedded worker), read the run history with per-file
outcomes, change and delete the source; refused locations are 400, a second run while one goes is 409.

The documents are ingested through `FakeIngestService` (the versioned-document contract of issue 17, which the
pipelines' `IngestService` fulfils once merged): `app.composition.ingest_adapter` is pointed at it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app import composition
from app.api.routes import sources as sources_route
from app.main import create_app
from app.services.api_keys import KeyStore, Role
from app.sync.runner import ingest_adapter
from app.testing.sync import FakeIngestService


@pytest.fixture(scope="module")
def store_profile():
    """The runs go through the job table and the state database: one store profile is enough."""
    return "default"


@pytest.fixture(scope="module")
def fake_ingest() -> FakeIngestService:
    return FakeIngestService()


def key_with(api_settings, role: str, principals: list[str]) -> dict[str, str]:
    """Headers of a new key of `role` on every collection that reads the documents of `principals`."""
    store = KeyStore(api_settings.keys_db)
    created = store.create(name=f"{role}-{'-'.join(principals)}", role=Role(role), collections=None)
    assert created is not None
    with store.db.connect() as db:  # the key's principals (set by `POST /keys` once per-document access is merged)
        db.execute("UPDATE api_keys SET principals = ? WHERE id = ?", (json.dumps(principals), created[0].id))
    return {"Authorization": f"Bearer {created[1]}"}


@pytest.fixture(scope="module")
def auth_headers(api_settings):
    """An admin key that reads every document (`*`), as RAG_ADMIN_KEY's."""
    return key_with(api_settings, "admin", ["*"])


@pytest.fixture(scope="module")
def api(api_settings, auth_headers, fake_ingest) -> Iterator[TestClient]:
    patch = pytest.MonkeyPatch()
    adapter = lambda _ingest, collection: ingest_adapter(fake_ingest, collection)  # noqa: E731
    patch.setattr(composition, "ingest_adapter", adapter)
    patch.setattr(sources_route, "ingest_adapter", adapter)
    try:
        with TestClient(create_app(api_settings), headers=auth_headers) as client:
            yield client
    finally:
        patch.undo()


def wait_for_run(api: TestClient, source_id: str, run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        runs = api.get(f"/sources/{source_id}/runs", params={"entries": "true"}).json()["runs"]
        run = next(r for r in runs if r["run_id"] == run_id)
        if run["state"] in ("done", "failed", "cancelled"):
            return dict(run)
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not finish")


def test_a_folder_source_over_http(api, api_settings, fake_ingest):
    folder = api_settings.sync_root_paths[0] / "handbook"
    (folder / "policies").mkdir(parents=True)
    (folder / "intro.txt").write_text("Welcome aboard.")
    (folder / "policies" / "leave.md").write_text("Leave is 25 days.")
    (folder / "notes.tmp").write_text("scratch")
    body = {
        "collection": "handbook",
        "kind": "folder",
        "location": "handbook",
        "exclude": ["*.tmp"],
        "access": ["group:staff"],
    }
    created = api.post("/sources", json=body)
    assert created.status_code == 201, created.text
    source = created.json()
    assert source["id"].startswith("src_") and source["location"] == str(folder.resolve())
    assert source["interval_seconds"] is None and source["next_run_at"] is None and source["access"] == ["group:staff"]

    started = api.post(f"/sources/{source['id']}/runs")
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]
    assert started.json()["job_url"] == f"/jobs/{run_id}"
    run = wait_for_run(api, source["id"], run_id)
    assert run["state"] == "done" and run["counts"]["added"] == 2, run
    assert {e["key"]: e["outcome"] for e in run["entries"]} == {"intro.txt": "added", "policies/leave.md": "added"}
    ingest = fake_ingest.of("handbook")
    assert {d.access == ["group:staff"] for d in ingest.documents.values()} == {True}
    assert api.get(f"/jobs/{run_id}").json()["state"] == "done"

    (folder / "intro.txt").write_text("Welcome aboard, again.")
    (folder / "policies" / "leave.md").unlink()
    run_id = api.post(f"/sources/{source['id']}/runs").json()["run_id"]
    run = wait_for_run(api, source["id"], run_id)
    assert {e["key"]: e["outcome"] for e in run["entries"]} == {"intro.txt": "updated", "policies/leave.md": "removed"}
    listed = api.get("/sources", params={"collection": "handbook"}).json()
    assert listed["total"] == 1 and listed["sources"][0]["id"] == source["id"]
    history = api.get(f"/sources/{source['id']}/runs", params={"limit": 1}).json()
    assert history["total"] == 2 and len(history["runs"]) == 1 and history["runs"][0]["entries"] is None

    patched = api.patch(f"/sources/{source['id']}", json={"interval_seconds": 3600, "include": ["*.txt"]})
    assert patched.status_code == 200, patched.text
    assert patched.json()["interval_seconds"] == 3600 and patched.json()["next_run_at"] is not None
    assert api.patch(f"/sources/{source['id']}", json={"interval_seconds": 5}).status_code == 422

    assert api.delete(f"/sources/{source['id']}", params={"remove_documents": "true"}).status_code == 204
    assert ingest.removed()[-1] == "intro.txt" and ingest.documents == {}
    assert api.get(f"/sources/{source['id']}").status_code == 404


def test_a_source_whose_documents_a_key_may_not_read_does_not_exist_for_it(api, api_settings):
    """As a security finding: a run's entries name the documents (and count them); a reader of the collection who may
    not read them must not learn of them through `/sources`."""
    (api_settings.sync_root_paths[0] / "hr").mkdir(parents=True, exist_ok=True)
    body = {"collection": "hr", "kind": "folder", "location": "hr", "access": ["group:hr"]}
    source = api.post("/sources", json=body).json()
    run_id = api.post(f"/sources/{source['id']}/runs").json()["run_id"]
    wait_for_run(api, source["id"], run_id)
    outsider = key_with(api_settings, "reader", ["group:eng"])
    for path in (f"/sources/{source['id']}", f"/sources/{source['id']}/runs"):
        hidden = api.get(path, headers=outsider)
        assert hidden.status_code == 404, hidden.text
        assert hidden.json()["error"]["message"] == f"source {source['id']!r} does not exist"
    assert api.post(f"/sources/{source['id']}/runs", headers=key_with(api_settings, "writer", [])).status_code == 404
    listed = api.get("/sources", params={"collection": "hr"}, headers=outsider).json()
    assert listed == {"total": 0, "offset": 0, "limit": 20, "sources": []}  # not in the list, nor in its count
    insider = key_with(api_settings, "reader", ["group:hr", "user:x"])
    assert api.get(f"/sources/{source['id']}/runs", headers=insider).status_code == 200
    assert api.get("/sources", params={"collection": "hr"}, headers=insider).json()["total"] == 1


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "folder", "location": "/etc"},
        {"kind": "folder", "location": "../../.."},
        {"kind": "folder", "location": "missing-folder"},
        {"kind": "s3", "location": "s3://any-bucket/prefix"},
        {"kind": "urls", "location": ["http://127.0.0.1:8000/admin"]},
        {"kind": "urls", "location": ["file:///etc/passwd"]},
        {"kind": "folder", "location": "x", "access": ["everyone"]},
    ],
)
def test_refused_locations_are_400_as_a_security_finding(api, body):
    response = api.post("/sources", json={"collection": "c", **body})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_input"


def test_a_second_run_while_one_is_going_is_409(api, api_settings, monkeypatch):
    (api_settings.sync_root_paths[0] / "busy").mkdir(parents=True, exist_ok=True)
    source = api.post("/sources", json={"collection": "busy", "kind": "folder", "location": "busy"}).json()
    first = api.post(f"/sources/{source['id']}/runs")
    assert first.status_code == 202
    service = api.app.state.rag.sources  # type: ignore[attr-defined]
    monkeypatch.setattr(service, "run_finished", lambda _run_id: False)  # the first run still going, however fast
    # an empty folder's run can end, and release its claim, before the next request: hold the claim as a running run
    service.store.claim(source["id"], first.json()["run_id"], expected=None)
    second = api.post(f"/sources/{source['id']}/runs")
    assert second.status_code == 409, second.text
    assert second.json()["error"]["detail"] == {"run_id": first.json()["run_id"]}
    monkeypatch.undo()
    wait_for_run(api, source["id"], first.json()["run_id"])
    service.store.release(source["id"], first.json()["run_id"])  # the claim this test held, if the run had ended
    assert api.post(f"/sources/{source['id']}/runs").status_code == 202  # once it ended
