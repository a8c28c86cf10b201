"""Two API hosts and two worker hosts on one machine, sharing only PostgreSQL, Redis and an S3 server.

Each process has its own hostname (`unshare --uts`) and its own data directory: nothing reaches another host but
through the shared services (app.testing.cluster). What a user of a cluster relies on: keys and collections agree
across replicas, uploads are indexed by the workers exactly once, spread over them, a worker that dies mid-file is
replaced without losing or doubling chunks, and every replica answers alike.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from app.testing.cluster import SharedServices, cluster_api, cluster_worker, kill_host, shared_services
from app.testing.profiles import tiny_profile
from app.testing.servers import ServerProcess

pytestmark = [pytest.mark.cluster, pytest.mark.postgres, pytest.mark.integration, pytest.mark.slow]

R_INTRO = Path("/usr/share/R/doc/manual/R-intro.pdf")
TERMINAL = ("done", "failed", "cancelled")


class Cluster:
    def __init__(self, shared: SharedServices, pipelines: Path, root: Path, table: str) -> None:
        self.shared, self.pipelines, self.root, self.table = shared, pipelines, root, table
        self.apis: dict[str, ServerProcess] = {}
        self.workers: dict[str, ServerProcess] = {}
        self.headers = {"Authorization": f"Bearer {shared.admin_key}"}

    def client(self, host: str, headers: dict[str, str] | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.apis[host].url, headers=headers or self.headers, timeout=120)

    def wait_job(self, host: str, job_id: str, seconds: float = 300) -> dict:
        deadline = time.monotonic() + seconds
        with self.client(host) as client:
            while time.monotonic() < deadline:
                job = client.get(f"/jobs/{job_id}").json()
                if job["state"] in TERMINAL:
                    return job
                time.sleep(0.5)
        raise AssertionError(f"job {job_id} did not finish in {seconds} s: {job}")

    def chunks_by_document(self, collection: str) -> dict[str, int]:
        with psycopg.connect(self.shared.pg_conn_str) as connection:
            rows = connection.execute(
                f"SELECT meta->>'document_id', COUNT(*) FROM {self.table} WHERE meta->>'collection' = %s GROUP BY 1",
                (collection,),
            ).fetchall()
        return {document_id: count for document_id, count in rows}

    def worker_log(self, host: str) -> str:
        return (self.root / host / "worker.log").read_text(errors="replace")


@pytest.fixture(scope="module")
def cluster(pg_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("cluster")
    pipelines = tiny_profile(root / "pipelines", profile="pgvector")
    table = _pgvector_table(pipelines)
    with shared_services(root, pg_dsn, lease_seconds=6) as shared:
        cluster = Cluster(shared, pipelines, root, table)
        with (
            cluster_api("api-a", shared, pipelines, root) as api_a,
            cluster_api("api-b", shared, pipelines, root) as api_b,
            cluster_worker("worker-a", shared, pipelines, root) as worker_a,
            cluster_worker("worker-b", shared, pipelines, root) as worker_b,
        ):
            cluster.apis = {"a": api_a, "b": api_b}
            cluster.workers = {"worker-a": worker_a, "worker-b": worker_b}
            yield cluster


def _pgvector_table(pipelines: Path) -> str:
    import yaml

    data = yaml.safe_load((pipelines / "indexing.yml").read_text())
    for spec in data["components"].values():
        store = spec.get("init_parameters", {}).get("document_store")
        if store and store["type"].endswith("PgvectorDocumentStore"):
            return str(store["init_parameters"]["table_name"])
    raise AssertionError("no pgvector store in the profile")


def test_no_host_shares_a_filesystem_or_a_hostname(cluster: Cluster) -> None:
    hostnames = set()
    for name in ["api-a", "api-b", "worker-a", "worker-b"]:
        assert (cluster.root / name).is_dir()
        assert not (cluster.root / name / "admin.key").exists()  # RAG_ADMIN_KEY, stored hashed in PostgreSQL
        assert not (cluster.root / name / "jobs.db").exists() and not (cluster.root / name / "auth.db").exists()
        hostnames.add(name)
    with cluster.client("a") as client:
        assert client.get("/ready").status_code == 200


def test_a_key_revoked_on_a_is_refused_on_b(cluster: Cluster) -> None:
    with cluster.client("a") as a:
        created = a.post("/keys", json={"name": "reader on b", "role": "reader"}).json()
    reader = {"Authorization": f"Bearer {created['key']}"}
    with cluster.client("b", reader) as b:
        assert b.get("/collections").status_code == 200
    with cluster.client("a") as a:
        assert a.delete(f"/keys/{created['id']}").status_code == 204
    with cluster.client("b", reader) as b:
        refused = b.get("/collections")
    assert refused.status_code == 401, refused.text


def test_a_collection_created_on_a_is_listed_on_b(cluster: Cluster) -> None:
    with cluster.client("a") as a:
        assert a.post("/collections", json={"name": "made-on-a"}).status_code in (200, 201)
    with cluster.client("b") as b:
        names = [c["name"] for c in b.get("/collections").json()]
    assert "made-on-a" in names


def test_an_upload_to_a_is_indexed_by_a_worker_and_answered_by_b(cluster: Cluster) -> None:
    text = b"The cluster test's lighthouse keeper is named Oskarine Vellacott.\n"
    with cluster.client("a") as a:
        response = a.post(
            "/documents/upload",
            params={"async": "true"},
            data={"collection": "single"},
            files=[("files", ("keeper.txt", text, "text/plain"))],
        )
    assert response.status_code == 202, response.text
    job = cluster.wait_job("b", response.json()["job_id"])
    assert job["state"] == "done" and job["files"][0]["status"] == "indexed"
    assert any(job["job_id"] in cluster.worker_log(host) for host in cluster.workers)
    with cluster.client("b") as b:
        answer = b.post("/query", json={"question": "Who is the lighthouse keeper?", "collection": "single"}).json()
    assert any("Vellacott" in source["text"] for source in answer["sources"])


def test_twenty_files_are_spread_over_both_workers_and_indexed_once(cluster: Cluster) -> None:
    files = [
        ("files", (f"note-{n:02d}.txt", f"Note {n}: the harbour tide table entry number {n} reads {n * 7} cm.\n"))
        for n in range(20)
    ]
    with cluster.client("a") as a:
        response = a.post("/documents/upload", params={"async": "true"}, data={"collection": "twenty"}, files=files)
    assert response.status_code == 202, response.text
    job = cluster.wait_job("a", response.json()["job_id"])
    assert job["state"] == "done"
    assert [f["status"] for f in job["files"]] == ["indexed"] * 20
    ran_on = {host for host in cluster.workers if "note-" in cluster.worker_log(host)}
    assert ran_on == set(cluster.workers), "both workers took files of the one upload"
    stored = cluster.chunks_by_document("twenty")
    assert len(stored) == 20
    assert stored == {f["document_id"]: f["chunks"] for f in job["files"]}


def test_a_and_b_answer_the_same_query_identically(cluster: Cluster) -> None:
    question = {"question": "What does tide table entry number 3 read?", "collection": "twenty", "top_k": 3}
    with cluster.client("a") as a, cluster.client("b") as b:
        first, second = a.post("/query", json=question).json(), b.post("/query", json=question).json()
    assert first["answer"] == second["answer"]
    assert [(s["document_id"], s["text"]) for s in first["sources"]] == [
        (s["document_id"], s["text"]) for s in second["sources"]
    ]


def test_a_worker_killed_mid_file_is_finished_by_the_other(cluster: Cluster) -> None:
    data = R_INTRO.read_bytes()
    with cluster.client("b") as b:  # a clean run of the same file, indexed synchronously on host b
        clean = b.post("/documents/upload", data={"collection": "clean"}, files=[("files", ("R-intro.pdf", data))])
    assert clean.status_code == 200, clean.text
    clean_chunks = clean.json()["files"][0]["chunks"]
    with cluster.client("a") as a:
        response = a.post(
            "/documents/upload",
            params={"async": "true"},
            data={"collection": "killed"},
            files=[("files", ("R-intro.pdf", data))],
        )
    job_id = response.json()["job_id"]
    victim = _wait_running_host(cluster, job_id)
    kill_host(cluster.workers[victim].proc)
    job = cluster.wait_job("a", job_id)
    assert job["state"] == "done", job
    assert job["files"][0]["chunks"] == clean_chunks
    assert sum(cluster.chunks_by_document("killed").values()) == clean_chunks
    survivor = next(host for host in cluster.workers if host != victim)
    assert job_id in cluster.worker_log(survivor)


def _wait_running_host(cluster: Cluster, job_id: str, seconds: float = 120) -> str:
    """The worker host that is embedding the job's file (its log names the job)."""
    deadline = time.monotonic() + seconds
    with cluster.client("a") as client:
        while time.monotonic() < deadline:
            job = client.get(f"/jobs/{job_id}").json()
            if job["state"] in ("embedding", "writing"):
                for host in cluster.workers:
                    if job_id in cluster.worker_log(host):
                        return host
            time.sleep(0.2)
    raise AssertionError(f"job {job_id} never ran")
