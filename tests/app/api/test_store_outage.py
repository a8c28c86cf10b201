"""PostgreSQL goes away and comes back under a running app (pgvector profile, a throwaway cluster of its own)."""

import time

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from app.testing.profiles import edit_yaml

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


def test_health_ready_and_503_while_postgres_is_down(
    throwaway_postgres, tmp_path, make_tiny_profile, html_file, monkeypatch
):
    pipelines = make_tiny_profile(tmp_path / "pipelines", profile="pgvector")

    def fail_fast(data):
        for spec in data["components"].values():
            store = spec.get("init_parameters", {}).get("document_store")
            if store:
                store["init_parameters"].update(pool_timeout=1.0, retries=1, retry_initial_delay=0.05)

    for name in ("indexing.yml", "query.yml"):
        edit_yaml(pipelines / name, fail_fast)
    monkeypatch.setenv("PG_CONN_STR", throwaway_postgres.dsn)
    search = {"question": "What is Python?", "collection": "o", "generate": False, "top_k": 2}
    with TestClient(create_app(Settings(data_dir=tmp_path / "data", pipelines_dir=pipelines, dev_mode=True))) as client:
        files = [("files", (html_file.name, html_file.read_bytes()))]
        assert client.post("/documents/upload", files=files, data={"collection": "o"}).status_code == 200
        before = client.post("/query", json=search).json()["sources"]
        assert before

        throwaway_postgres.stop()
        assert client.get("/health").status_code == 200
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["store"]["status"] == "error"
        for response in (
            client.post("/query", json=search),
            client.get("/collections"),
            client.post("/documents/upload", files=[("files", ("a.txt", b"some text"))], data={"collection": "o"}),
        ):
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "upstream_unavailable"

        throwaway_postgres.start()
        # the pool reconnects in the background with backoff: ready again within seconds, without a restart
        deadline = time.monotonic() + 60
        while client.get("/ready").status_code != 200:
            assert time.monotonic() < deadline, "the app did not reconnect to PostgreSQL within 60 s"
            time.sleep(0.5)
        after = client.post("/query", json=search).json()["sources"]
        assert [s["chunk_id"] for s in after] == [s["chunk_id"] for s in before]  # nothing lost
