"""Jobs against real `rag serve` processes: SIGKILL in the middle of a job, 50 concurrent uploads with queries,
and the Redis queue with a separate `rag worker`."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from app.testing.api import wait_for_job
from app.testing.servers import rag_server, rag_worker

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def lancedb_profile(tmp_path_factory, make_tiny_profile):
    return make_tiny_profile(tmp_path_factory.mktemp("jobs-served") / "pipelines")


def _chunks(http: httpx.Client, collection: str) -> dict[str, int]:
    listed = http.get("/documents", params={"collection": collection, "limit": 500}).json()
    return {d["document_id"]: d["chunks"] for d in listed["documents"]}


def test_kill_9_mid_job_then_restart_leaves_the_document_whole(lancedb_profile, tmp_path, r_intro_pdf):
    data_dir = tmp_path / "data"
    files = [("files", (r_intro_pdf.name, r_intro_pdf.read_bytes(), "application/pdf"))]
    started = time.monotonic()
    with rag_server(lancedb_profile, data_dir, log_name="first.log") as first:
        with httpx.Client(base_url=first.url, timeout=60) as http:
            accepted = http.post("/documents/upload?async=true", files=files, data={"collection": "k9"})
            assert accepted.status_code == 202, accepted.text
            job_id = accepted.json()["job_id"]
            job, seen = wait_for_job(http, job_id, until={"embedding", "writing", "done", "failed"})
        assert job["state"] in ("embedding", "writing"), seen  # past parsing: pages read, chunks being embedded
        assert job["progress"]["pages_done"] == 113
        first.proc.kill()  # SIGKILL: no shutdown code runs
        assert first.proc.wait(timeout=10) == -9
    killed = time.monotonic()
    with rag_server(lancedb_profile, data_dir, log_name="second.log") as second:
        with httpx.Client(base_url=second.url, timeout=300) as http:
            job, _ = wait_for_job(http, job_id)
            resumed = time.monotonic()
            assert job["state"] == "done", job  # the spooled PDF was still there: resumed, never lost
            document_id = job["files"][0]["document_id"]
            clean = http.post("/documents/upload", files=files, data={"collection": "k9-clean"}).json()["files"][0]
            assert clean["status"] == "indexed"
            assert _chunks(http, "k9") == {document_id: clean["chunks"]}  # whole: not partial, not doubled
            assert job["files"][0]["chunks"] == clean["chunks"]
    print(
        f"\nkill -9: killed {killed - started:.1f} s after start, job done {resumed - killed:.1f} s after the kill "
        f"(restart included), {clean['chunks']} chunks"
    )


def test_50_concurrent_uploads_with_queries_index_every_document_once(lancedb_profile, tmp_path):
    texts = {
        f"note-{n:02d}.txt": " ".join(
            f"Note {n} paragraph {p}: the lighthouse at station {n} logged {p * n} ships and {n + p} storms."
            for p in range(30)
        )
        for n in range(50)
    }

    async def upload(http: httpx.AsyncClient, n: int, name: str) -> httpx.Response:
        suffix = "?async=true" if n % 5 == 0 else ""  # every fifth one through a background job
        files = [("files", (name, texts[name].encode(), "text/plain"))]
        return await http.post(f"/documents/upload{suffix}", files=files, data={"collection": "many"})

    async def query(http: httpx.AsyncClient, n: int) -> httpx.Response:
        body = {"question": f"How many storms at station {n}?", "collection": "many", "generate": False}
        return await http.post("/query", json=body)

    async def run(base: str) -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(base_url=base, timeout=600, limits=limits) as http:
            calls = [upload(http, n, name) for n, name in enumerate(texts)] + [query(http, n) for n in range(25)]
            return await asyncio.gather(*calls)

    with rag_server(lancedb_profile, tmp_path / "data") as server:
        started = time.monotonic()
        responses = asyncio.run(run(server.url))
        answered = time.monotonic()
        assert [r.status_code for r in responses if r.status_code not in (200, 202)] == []
        results = {}
        with httpx.Client(base_url=server.url, timeout=120) as http:
            for response in responses[:50]:
                if response.status_code == 202:
                    job, _ = wait_for_job(http, response.json()["job_id"])
                    assert job["state"] == "done"
                    files = job["files"]
                else:
                    files = response.json()["files"]
                for result in files:
                    assert result["status"] == "indexed", result
                    results[result["document_id"]] = result["chunks"]
            finished = time.monotonic()
            stored = _chunks(http, "many")
    assert len(results) == 50 and stored == results  # 50 documents, each once, each with all its chunks
    print(
        f"\n50 concurrent uploads (10 as jobs) + 25 queries: all answered in {answered - started:.1f} s, "
        f"all indexed in {finished - started:.1f} s, {sum(stored.values())} chunks"
    )


def test_redis_queue_jobs_run_in_a_separate_worker(lancedb_profile, tmp_path, redis_server, html_file):
    env = {"RAG_JOB_QUEUE": "redis", "RAG_REDIS_URL": redis_server}
    data_dir = tmp_path / "data"
    files = [("files", (html_file.name, html_file.read_bytes(), "text/html"))]
    with rag_server(lancedb_profile, data_dir, env=env) as server, rag_worker(lancedb_profile, data_dir, env=env):
        with httpx.Client(base_url=server.url, timeout=120) as http:
            accepted = http.post("/documents/upload?async=true", files=files, data={"collection": "queued"})
            assert accepted.status_code == 202, accepted.text
            job, _ = wait_for_job(http, accepted.json()["job_id"])
            assert job["state"] == "done" and job["files"][0]["status"] == "indexed", job
            search = {"question": "Is Python free to use commercially?", "collection": "queued", "generate": False}
            sources = http.post("/query", json=search).json()["sources"]
            assert sources and {s["document_id"] for s in sources} == {job["files"][0]["document_id"]}
    worker_log = (data_dir / "worker.log").read_text()
    assert f"Running job {job['job_id']}" in worker_log  # run by the worker process, not the API
    assert f"Running job {job['job_id']}" not in server.log.read_text()
