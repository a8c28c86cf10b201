"""Red-team finding 4: `DELETE /collections/x` answered 204 while a job for `x` ran; the job then wrote its chunks
and registered `x` again. Now the drop cancels the collection's jobs and leaves a tombstone (a generation) that
writers check before and after they write. Both stores."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from app.testing.api import admin_headers, wait_for_job

STORE_PROFILES = [
    pytest.param("default", id="lancedb"),
    pytest.param("pgvector", id="pgvector", marks=pytest.mark.postgres),
]


@pytest.fixture(scope="module", params=STORE_PROFILES)
def client(request, tmp_path_factory, make_tiny_profile) -> Iterator[TestClient]:
    """The app with auth on (an admin key) over the profile's store."""
    with pytest.MonkeyPatch.context() as patch:
        if request.param == "pgvector":
            patch.setenv("PG_CONN_STR", request.getfixturevalue("pg_dsn"))
        root = tmp_path_factory.mktemp("dropped")
        pipelines = make_tiny_profile(root / "pipelines", profile=request.param)
        settings = Settings(data_dir=root / "data", pipelines_dir=pipelines, max_upload_mb=1, rate_limit="off")
        with TestClient(create_app(settings), headers=admin_headers(settings.data_dir)) as test_client:
            yield test_client


class WriteGate:
    """Holds the document store's writes into one collection until `release()`; `entered` is set when one waits."""

    def __init__(self, collection: str) -> None:
        self.collection = collection
        self.entered = threading.Event()
        self.gate = threading.Event()

    def release(self) -> None:
        self.gate.set()


@pytest.fixture
def write_gate(client, monkeypatch) -> Iterator[WriteGate]:
    store = client.app.state.rag.pipelines.document_store
    original = store.replace_documents  # the indexing writer (DocumentReplacer) replaces a document's chunks
    gate = WriteGate("")

    def gated(filters: Any, documents: list[Any]) -> Any:
        if gate.collection and any(d.meta.get("collection") == gate.collection for d in documents):
            gate.entered.set()
            assert gate.gate.wait(60)
        return original(filters, documents)

    monkeypatch.setattr(store, "replace_documents", gated)
    yield gate
    gate.release()


def _chunks(client: TestClient, collection: str) -> int:
    store = client.app.state.rag.pipelines.document_store
    return int(store.count_documents_by_filter({"field": "meta.collection", "operator": "==", "value": collection}))


def _listed(client: TestClient) -> set[str]:
    response = client.get("/collections")
    assert response.status_code == 200, response.text
    return {c["name"] for c in response.json()}


def _upload_job(client: TestClient, collection: str, name: str, data: bytes) -> str:
    response = client.post(
        "/documents/upload?async=true", files=[("files", (name, data))], data={"collection": collection}
    )
    assert response.status_code == 202, response.text
    return str(response.json()["job_id"])


def test_delete_collection_while_its_job_writes_then_job_rewrites_chunks_and_reregisters(client, write_gate, text_file):
    """The job is inside the store write when the drop answers 204: what it writes is removed, it ends cancelled,
    a job queued behind it is cancelled at once, and the collection stays gone until it is uploaded to again."""
    collection = "dropped-mid-write"
    assert client.post("/collections", json={"name": collection}).status_code == 201
    write_gate.collection = collection
    running = _upload_job(client, collection, text_file.name, text_file.read_bytes())
    assert write_gate.entered.wait(120), "the job never reached the store write"
    queued = _upload_job(client, collection, "second.txt", b"A second file, queued behind the first.\n" * 20)

    assert client.delete(f"/collections/{collection}").status_code == 204
    assert client.get(f"/jobs/{queued}").json()["state"] == "cancelled"  # nobody ran it: cancelled at once
    write_gate.release()
    job, _ = wait_for_job(client, running)

    assert job["state"] == "cancelled", job
    assert [f["state"] for f in job["files"]] == ["skipped"]
    assert _chunks(client, collection) == 0
    assert collection not in _listed(client)

    write_gate.collection = ""
    again = _upload_job(client, collection, text_file.name, text_file.read_bytes())
    job, _ = wait_for_job(client, again)
    assert job["state"] == "done" and job["files"][0]["status"] == "indexed", job
    assert _chunks(client, collection) == job["files"][0]["chunks"] > 0
    assert collection in _listed(client)


def test_delete_collection_while_its_job_parses_then_job_writes_nothing(client, monkeypatch, text_file):
    """Dropped before the job reaches the writer: it stops at its next step, and POST /collections re-creates it."""
    collection = "dropped-mid-parse"
    ingest = client.app.state.rag.ingest
    original = ingest.ingest_bytes
    entered, gate = threading.Event(), threading.Event()

    def gated(data: bytes, filename: str, **kwargs: Any) -> Any:
        entered.set()
        assert gate.wait(60)
        return original(data, filename, **kwargs)

    assert client.post("/collections", json={"name": collection}).status_code == 201
    monkeypatch.setattr(ingest, "ingest_bytes", gated)
    running = _upload_job(client, collection, text_file.name, text_file.read_bytes())
    assert entered.wait(60)
    assert client.delete(f"/collections/{collection}").status_code == 204
    gate.set()
    job, _ = wait_for_job(client, running)
    monkeypatch.setattr(ingest, "ingest_bytes", original)

    assert job["state"] == "cancelled", job
    assert _chunks(client, collection) == 0
    assert collection not in _listed(client)
    assert client.post("/collections", json={"name": collection}).status_code == 201
    assert collection in _listed(client)


def test_delete_collection_during_a_sync_upload_then_upload_reregisters(client, write_gate, text_file):
    """A synchronous upload whose write overlaps the drop: its chunks are removed, it answers 409, nothing is listed."""
    collection = "dropped-mid-sync"
    assert client.post("/collections", json={"name": collection}).status_code == 201
    write_gate.collection = collection
    answers: list[Any] = []
    upload = threading.Thread(
        target=lambda: answers.append(
            client.post(
                "/documents/upload",
                files=[("files", (text_file.name, text_file.read_bytes()))],
                data={"collection": collection},
            )
        )
    )
    upload.start()
    assert write_gate.entered.wait(120)
    assert client.delete(f"/collections/{collection}").status_code == 204
    write_gate.release()
    upload.join(120)

    assert answers and answers[0].status_code == 409, answers
    assert answers[0].json()["error"]["code"] == "collection_dropped"
    assert _chunks(client, collection) == 0
    assert collection not in _listed(client)


def test_delete_collection_known_only_by_its_running_job_answers_404_and_the_job_creates_it(
    client, monkeypatch, text_file
):
    """A first upload into a new collection runs as a job (nothing indexed or registered yet): DELETE answered 404 and
    the job then created the collection. Now the drop answers 204, cancels the job and the collection stays gone."""
    collection = "dropped-before-it-existed"
    ingest = client.app.state.rag.ingest
    original = ingest.ingest_bytes
    entered, gate = threading.Event(), threading.Event()

    def gated(data: bytes, filename: str, **kwargs: Any) -> Any:
        if kwargs.get("collection") == collection:
            entered.set()
            assert gate.wait(60)
        return original(data, filename, **kwargs)

    monkeypatch.setattr(ingest, "ingest_bytes", gated)
    try:
        running = _upload_job(client, collection, text_file.name, text_file.read_bytes())
        assert entered.wait(60), "the job never started"
        queued = _upload_job(client, collection, "second.txt", b"A second file, queued behind the first.\n" * 20)
        assert collection not in _listed(client)

        response = client.delete(f"/collections/{collection}")
        assert response.status_code == 204, response.text
        assert client.get(f"/jobs/{queued}").json()["state"] == "cancelled"
    finally:
        gate.set()
    job, _ = wait_for_job(client, running)

    assert job["state"] == "cancelled", job
    assert _chunks(client, collection) == 0
    assert collection not in _listed(client)
    assert client.delete(f"/collections/{collection}").status_code == 404  # nothing of it is left
