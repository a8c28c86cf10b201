"""A document is visible complete or not at all, and jobs survive the process that accepted them (both stores).

Each test starts its own app(s) on the module's data dir, so a job is always run by the instance under test.
"""

from __future__ import annotations

import shutil
import threading
from typing import Any

from fastapi.testclient import TestClient
from haystack import Document

from app.composition import job_service
from app.jobs import JobService, UploadedFile
from app.main import create_app
from app.testing.api import wait_for_job


def _chunks(client: Any, collection: str) -> dict[str, int]:
    listed = client.get("/documents", params={"collection": collection}).json()
    return {d["document_id"]: d["chunks"] for d in listed["documents"]}


def _service(settings: Any) -> JobService:
    """The job table as another process (a crashed API) left it."""
    return job_service(settings)


def test_a_write_failing_halfway_leaves_no_chunks(api_settings, auth_headers, html_file):
    files = [("files", (html_file.name, html_file.read_bytes()))]
    with TestClient(create_app(api_settings), headers=auth_headers) as client:
        store = client.app.state.rag.pipelines.document_store
        original = store.write_documents

        def half_then_fail(filters: Any, documents: list[Document]) -> tuple[int, int]:
            original(documents[: len(documents) // 2])  # a store writing in batches, dying midway
            raise RuntimeError("disk full (injected)")

        store.replace_documents = half_then_fail  # the writer (DocumentReplacer) replaces the document's chunks
        try:
            failed = client.post("/documents/upload", files=files, data={"collection": "half"})
        finally:
            del store.replace_documents
        assert failed.status_code == 422
        assert _chunks(client, "half") == {}  # the half-written document was removed, not left as "indexed"
        search = {"question": "What is Python?", "collection": "half", "generate": False}
        assert client.post("/query", json=search).json()["sources"] == []
        again = client.post("/documents/upload", files=files, data={"collection": "half"}).json()["files"][0]
        assert again["status"] == "indexed"  # not mistaken for a duplicate of the partial write
        assert _chunks(client, "half") == {again["document_id"]: again["chunks"]}


def test_a_queued_job_is_run_by_the_next_app_instance(api_settings, auth_headers, text_file):
    job = _service(api_settings).submit(
        "resumed", {"source": "restart"}, [UploadedFile(text_file.name, "text/plain", text_file.read_bytes())]
    )  # accepted (202) by a process that stopped before running it
    with TestClient(create_app(api_settings), headers=auth_headers) as client:
        done, _ = wait_for_job(client, job.id)
        assert done["state"] == "done" and done["files"][0]["status"] == "indexed"
        listed = client.get("/documents", params={"collection": "resumed"}).json()["documents"]
        assert [d["tags"] for d in listed] == [{"source": "restart"}]


def test_a_job_whose_spooled_files_vanished_fails_with_the_reason(api_settings, auth_headers, text_file):
    job = _service(api_settings).submit(
        "vanished", {}, [UploadedFile("gone.txt", "text/plain", b"words that never reach the index")]
    )
    shutil.rmtree(api_settings.jobs_dir / job.id)
    with TestClient(create_app(api_settings), headers=auth_headers) as client:
        failed, _ = wait_for_job(client, job.id)
    assert failed["state"] == "failed"
    assert "spooled files are gone" in failed["error"]
    assert failed["files"][0]["error_code"] == "spool_missing"


def test_a_file_interrupted_mid_write_is_cleaned_and_indexed_once(api_settings, auth_headers, html_file):
    with TestClient(create_app(api_settings), headers=auth_headers) as client:  # the chunk count of a clean ingest
        clean = client.post(
            "/documents/upload", files=[("files", (html_file.name, html_file.read_bytes()))], data={"collection": "c1"}
        ).json()["files"][0]["chunks"]
        store = client.app.state.rag.pipelines.document_store
    # what a worker killed mid-write leaves: the job's file "running", a stray chunk of its document in the store
    service = _service(api_settings)
    job = service.submit("crashed", {}, [UploadedFile(html_file.name, "text/html", html_file.read_bytes())])
    document_id = job.files[0].document_id
    service.store.update_file(job.id, 0, state="running", attempts=1)
    service.store.set_state(job.id, "writing")
    assert service.store.claim(job.id, "gone:1:x", lease_seconds=0)  # its worker's lease has run out
    stray = Document(
        content="a stray partial chunk",
        embedding=[0.1] * 384,
        meta={"collection": "crashed", "document_id": document_id, "file_name": html_file.name},
    )
    store.write_documents([stray])
    with TestClient(create_app(api_settings), headers=auth_headers) as client:
        done, _ = wait_for_job(client, job.id)
        assert done["state"] == "done" and done["files"][0]["status"] == "indexed", done
        assert _chunks(client, "crashed") == {document_id: clean}


def test_shutdown_mid_job_requeues_the_file_and_the_next_start_finishes_it(api_settings, auth_headers, html_file):
    data = html_file.read_bytes()
    with TestClient(create_app(api_settings), headers=auth_headers) as client:
        ingest = client.app.state.rag.ingest
        original = ingest.ingest_bytes
        inside = threading.Event()
        release = threading.Event()

        def held(*args: Any, **kwargs: Any) -> Any:
            inside.set()
            assert release.wait(60)
            return original(*args, **kwargs)

        ingest.ingest_bytes = held
        files = [("files", (html_file.name, data))]
        job_id = client.post("/documents/upload?async=true", files=files, data={"collection": "stopped"}).json()[
            "job_id"
        ]
        assert inside.wait(60)
        threading.Timer(0.5, release.set).start()  # the file proceeds while the app is already shutting down
    job = _service(api_settings).get(job_id)  # the worker stopped before the pipeline's next component
    assert job.state == "queued" and job.owner is None
    assert [(f.state, f.attempts) for f in job.files] == [("queued", 1)]
    with TestClient(create_app(api_settings), headers=auth_headers) as client:
        assert _chunks(client, "stopped") == {}  # nothing of the interrupted file is visible
        done, _ = wait_for_job(client, job_id)
        assert done["state"] == "done" and done["files"][0]["status"] == "indexed"
        assert _chunks(client, "stopped") == {done["files"][0]["document_id"]: done["files"][0]["chunks"]}
        assert "stopped" in [c["name"] for c in client.get("/collections").json()]
