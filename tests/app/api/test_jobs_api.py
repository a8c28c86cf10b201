"""Background ingestion jobs through the API, on both stores: 202 + job, stages and progress, per-file errors,
cancel, retry, the size/page threshold, 404 for unknown jobs."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.errors import UpstreamUnavailableError
from app.main import create_app
from app.testing.api import wait_for_job


def _documents(client: Any, collection: str) -> dict[str, int]:
    listed = client.get("/documents", params={"collection": collection, "limit": 500}).json()
    return {d["filename"]: d["chunks"] for d in listed["documents"]}


def test_async_upload_answers_202_and_the_job_ends_done(client, html_file, text_file):
    files = [("files", (html_file.name, html_file.read_bytes())), ("files", (text_file.name, text_file.read_bytes()))]
    response = client.post("/documents/upload?async=true", files=files, data={"collection": "jobs-ok"})
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["state"] == "queued" and accepted["collection"] == "jobs-ok"
    assert response.headers["location"] == accepted["status_url"] == f"/jobs/{accepted['job_id']}"
    job, seen = wait_for_job(client, accepted["job_id"])
    assert job["state"] == "done" and job["error"] is None, job
    assert set(seen) <= {"queued", "parsing", "embedding", "writing", "done"}
    assert [f["status"] for f in job["files"]] == ["indexed", "indexed"]
    progress = job["progress"]
    chunks = sum(f["chunks"] for f in job["files"])
    assert chunks > 0
    assert progress == {
        "files_done": 2,
        "files_total": 2,
        "pages_done": 2,
        "pages_total": 2,
        "chunks_done": chunks,
        "chunks_total": chunks,
    }
    assert _documents(client, "jobs-ok") == {f["filename"]: f["chunks"] for f in job["files"]}
    again = client.post("/documents/upload?async=true", files=files[:1], data={"collection": "jobs-ok"}).json()
    assert wait_for_job(client, again["job_id"])[0]["files"][0]["status"] == "unchanged"  # the same source and bytes
    copy = [("files", ("copy-" + html_file.name, html_file.read_bytes()))]
    other = client.post("/documents/upload?async=true", files=copy, data={"collection": "jobs-ok"}).json()
    assert wait_for_job(client, other["job_id"])[0]["files"][0]["status"] == "duplicate"  # another source's bytes


def test_a_job_reports_the_new_version_and_its_chunk_counts(client):
    text = "The pilot boards at the outer buoy and takes the ship in. " * 40
    data = {"collection": "jobs-versions", "source_id": "kb/pilots"}
    first = client.post("/documents/upload?async=true", files=[("files", ("p.txt", text.encode()))], data=data)
    assert first.status_code == 202, first.text
    created = wait_for_job(client, first.json()["job_id"])[0]["files"][0]
    assert (created["status"], created["version"], created["source_id"]) == ("indexed", 1, "kb/pilots")
    changed = (text + "Tugs wait at the breakwater.").encode()
    second = client.post("/documents/upload?async=true", files=[("files", ("p.txt", changed))], data=data).json()
    job = wait_for_job(client, second["job_id"])[0]
    assert job["state"] == "done", job
    updated = job["files"][0]
    assert (updated["status"], updated["version"], updated["document_id"]) == ("updated", 2, created["document_id"])
    assert updated["chunks_unchanged"] >= 1 and updated["chunks_added"] >= 1
    assert updated["chunks_unchanged"] + updated["chunks_added"] == updated["chunks"]


def test_a_bad_file_in_a_job_has_the_error_of_a_sync_upload(client, text_file):
    bad = ("files", ("tool.exe", b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" * 64))
    sync = client.post("/documents/upload", files=[bad], data={"collection": "jobs-bad"}).json()
    expected = sync["error"]["detail"]["files"][0]
    files = [("files", (text_file.name, text_file.read_bytes())), bad]
    accepted = client.post("/documents/upload?async=true", files=files, data={"collection": "jobs-bad"}).json()
    job, _ = wait_for_job(client, accepted["job_id"])
    assert job["state"] == "done"  # one file indexed: the job is done, the other file carries its error
    good, failed = job["files"]
    assert good["status"] == "indexed"
    assert (failed["state"], failed["status"]) == ("failed", "failed")
    assert (failed["error_code"], failed["error"]) == (expected["error_code"], expected["error"])
    assert job["progress"]["files_done"] == 2


def test_a_job_of_only_bad_files_fails_with_a_reason(client):
    accepted = client.post(
        "/documents/upload?async=true", files=[("files", ("empty.txt", b""))], data={"collection": "jobs-bad"}
    ).json()
    job, _ = wait_for_job(client, accepted["job_id"])
    assert job["state"] == "failed" and job["error"] == "no file could be indexed"
    assert job["files"][0]["error_code"] == "extraction_failed"


@pytest.fixture
def gated_ingest(client, monkeypatch):
    """Files named `slow*` wait for `gate` before indexing; files named `flaky*` fail once as if the store were down."""
    ingest = client.app.state.rag.ingest
    original = ingest.ingest_bytes
    gate = threading.Event()
    failed_once: set[str] = set()

    def gated(data: bytes, filename: str, **kwargs: Any) -> Any:
        if filename.startswith("slow"):
            assert gate.wait(60)
        if filename.startswith("flaky") and filename not in failed_once:
            failed_once.add(filename)
            raise UpstreamUnavailableError("document store unreachable (injected)")
        return original(data, filename, **kwargs)

    monkeypatch.setattr(ingest, "ingest_bytes", gated)
    yield gate
    gate.set()


def test_cancel_stops_a_running_job_and_retry_finishes_it(client, gated_ingest, text_file, html_file):
    files = [
        ("files", ("slow-" + text_file.name, text_file.read_bytes())),
        ("files", (html_file.name, html_file.read_bytes())),
    ]
    accepted = client.post("/documents/upload?async=true", files=files, data={"collection": "jobs-cancel"}).json()
    job_id = accepted["job_id"]
    wait_for_job(client, job_id, until={"parsing"})
    queued_behind = client.post(
        "/documents/upload?async=true", files=files[1:], data={"collection": "jobs-cancel-2"}
    ).json()
    cancelled_at_once = client.post(f"/jobs/{queued_behind['job_id']}/cancel")  # nobody runs it yet
    assert cancelled_at_once.status_code == 200
    assert cancelled_at_once.json()["state"] == "cancelled"
    requested = client.post(f"/jobs/{job_id}/cancel").json()
    assert requested["cancel_requested"] and requested["state"] == "parsing"  # stops at its next step
    gated_ingest.set()
    job, _ = wait_for_job(client, job_id)
    assert job["state"] == "cancelled"
    assert [f["state"] for f in job["files"]] == ["skipped", "skipped"]
    assert _documents(client, "jobs-cancel") == {}  # the file stopped mid-pipeline left no chunks
    assert client.post(f"/jobs/{job_id}/cancel").status_code == 409

    retried = client.post(f"/jobs/{job_id}/retry")
    assert retried.status_code == 200 and retried.json()["state"] == "queued"
    job, _ = wait_for_job(client, job_id)
    assert job["state"] == "done" and [f["status"] for f in job["files"]] == ["indexed", "indexed"]
    assert _documents(client, "jobs-cancel") == {f["filename"]: f["chunks"] for f in job["files"]}
    assert client.post(f"/jobs/{job_id}/retry").status_code == 409  # nothing failed any more


def test_retry_reindexes_a_failed_file(client, gated_ingest, text_file):
    files = [("files", ("flaky-" + text_file.name, text_file.read_bytes()))]
    accepted = client.post("/documents/upload?async=true", files=files, data={"collection": "jobs-retry"}).json()
    job, _ = wait_for_job(client, accepted["job_id"])
    assert job["state"] == "failed"
    assert job["files"][0]["error_code"] == "upstream_unavailable"
    assert _documents(client, "jobs-retry") == {}
    assert client.post(f"/jobs/{job['job_id']}/retry").status_code == 200
    job, _ = wait_for_job(client, job["job_id"])
    assert job["state"] == "done" and job["files"][0]["status"] == "indexed"
    assert _documents(client, "jobs-retry") == {job["files"][0]["filename"]: job["files"][0]["chunks"]}


def test_retry_after_the_retention_sweep_answers_410_with_the_reason(client, gated_ingest, text_file):
    files = [("files", ("flaky-swept-" + text_file.name, text_file.read_bytes()))]
    accepted = client.post("/documents/upload?async=true", files=files, data={"collection": "jobs-swept"}).json()
    job, _ = wait_for_job(client, accepted["job_id"])
    assert job["state"] == "failed"
    jobs = client.app.state.rag.jobs
    assert (jobs.jobs_dir / job["job_id"] / "0").exists()
    later = time.time() + (jobs.retention_days + 1) * 86_400
    with pytest.MonkeyPatch.context() as patch:  # eight days later
        patch.setattr(jobs.store, "clock", lambda: later)
        assert jobs.sweep().uploads_removed >= 1

    response = client.post(f"/jobs/{job['job_id']}/retry")
    assert response.status_code == 410, response.text
    error = response.json()["error"]
    assert error["code"] == "uploads_removed"
    assert f"removed {jobs.retention_days + 1} days after it finished" in error["message"]
    assert not (jobs.jobs_dir / job["job_id"]).exists()
    assert client.get(f"/jobs/{job['job_id']}").json()["state"] == "failed"


def test_jobs_are_listed_newest_first_by_collection(client):
    ids = []
    for n in range(3):
        files = [("files", (f"note{n}.txt", f"Lighthouse keeper log number {n}.".encode()))]
        ids.append(client.post("/documents/upload?async=true", files=files, data={"collection": "jobs-list"}).json())
    for accepted in ids:
        wait_for_job(client, accepted["job_id"])
    page = client.get("/jobs", params={"collection": "jobs-list", "limit": 2}).json()
    assert page["total"] == 3 and page["limit"] == 2
    assert [j["job_id"] for j in page["jobs"]] == [ids[2]["job_id"], ids[1]["job_id"]]
    rest = client.get("/jobs", params={"collection": "jobs-list", "offset": 2}).json()
    assert [j["job_id"] for j in rest["jobs"]] == [ids[0]["job_id"]]
    assert client.get("/jobs", params={"collection": "jobs-list", "state": "failed"}).json()["total"] == 0
    assert client.get("/jobs", params={"state": "nonsense"}).status_code == 422


def test_unknown_job_is_a_404_json_error(client):
    for method, path in (("GET", "/jobs/nope"), ("POST", "/jobs/nope/cancel"), ("POST", "/jobs/nope/retry")):
        response = client.request(method, path)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


def test_uploads_beyond_the_thresholds_become_jobs(api_settings, auth_headers, r_intro_pdf, text_file):
    settings = api_settings.model_copy(update={"async_threshold_pages": 100, "async_threshold_mb": 1})
    big_texts = [("files", (f"big{n}.txt", (f"Log {n} of the harbour. " * 30_000).encode())) for n in range(2)]
    with TestClient(create_app(settings), headers=auth_headers) as small_threshold:
        below = small_threshold.post(
            "/documents/upload", files=[("files", (text_file.name, text_file.read_bytes()))], data={"collection": "th"}
        )
        assert below.status_code == 200
        many_pages = small_threshold.post(
            "/documents/upload",
            files=[("files", (r_intro_pdf.name, r_intro_pdf.read_bytes()))],
            data={"collection": "th"},
        )
        assert many_pages.status_code == 202, many_pages.text  # 113 pages > 100
        assert many_pages.json()["progress"]["pages_total"] == 113
        many_bytes = small_threshold.post("/documents/upload", files=big_texts, data={"collection": "th"})
        assert many_bytes.status_code == 202, many_bytes.text  # 1.3 MiB in total > 1 MiB
        for accepted in (many_pages.json(), many_bytes.json()):
            small_threshold.post(f"/jobs/{accepted['job_id']}/cancel")
            assert wait_for_job(small_threshold, accepted["job_id"])[0]["state"] == "cancelled"
