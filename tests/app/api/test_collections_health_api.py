import pytest


def test_health_ready_metrics_docs(client):
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready").json()
    assert ready["status"] == "ready"
    assert set(ready["checks"]) == {"pipelines", "store", "models"}
    assert "python_info" in client.get("/metrics").text
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/documents/upload",
        "/documents",
        "/documents/{document_id}",
        "/jobs",
        "/jobs/{job_id}",
        "/jobs/{job_id}/cancel",
        "/jobs/{job_id}/retry",
        "/query",
        "/query/stream",
        "/collections",
        "/collections/{name}",
        "/health",
        "/ready",
        "/metrics",
        "/v1/chat/completions",
        "/v1/models",
    ):
        assert path in paths


def test_unknown_route_is_json_404(client):
    response = client.get("/nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_collection_lifecycle(client):
    assert client.post("/collections", json={"name": "empty-one"}).status_code == 201
    assert client.post("/collections", json={"name": "empty-one"}).status_code == 409
    assert client.post("/collections", json={"name": "bad name"}).status_code == 422
    listed = {c["name"]: c for c in client.get("/collections").json()}
    assert listed["empty-one"] == {"name": "empty-one", "documents": 0, "chunks": 0}
    assert client.delete("/collections/empty-one").status_code == 204
    missing = client.delete("/collections/empty-one")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


@pytest.mark.integration
def test_collections_are_isolated_and_dropped(client, csv_file):
    files = [("files", (csv_file.name, csv_file.read_bytes(), "text/csv"))]
    assert client.post("/documents/upload", files=files, data={"collection": "iso-a"}).status_code == 200
    search = {"question": "seattle weather", "generate": False}
    assert client.post("/query", json={**search, "collection": "iso-a"}).json()["sources"]
    assert client.post("/query", json={**search, "collection": "iso-b"}).json()["sources"] == []
    listed = {c["name"]: c for c in client.get("/collections").json()}
    assert listed["iso-a"]["documents"] == 1 and listed["iso-a"]["chunks"] > 0
    assert client.delete("/collections/iso-a").status_code == 204
    assert client.post("/query", json={**search, "collection": "iso-a"}).json()["sources"] == []
