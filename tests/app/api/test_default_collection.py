"""RAG_DEFAULT_COLLECTION is the collection of every request that names none (upload, list, query)."""

from fastapi.testclient import TestClient

from app.main import create_app


def test_requests_without_a_collection_use_the_configured_default(api_settings, auth_headers, text_file):
    settings = api_settings.model_copy(update={"default_collection": "team-a"})
    with TestClient(create_app(settings), headers=auth_headers) as client:
        upload = client.post("/documents/upload", files=[("files", (text_file.name, text_file.read_bytes()))])
        assert upload.json()["collection"] == "team-a"
        listed = client.get("/documents").json()
        assert listed["collection"] == "team-a" and listed["total"] == 1
        assert client.get("/documents", params={"collection": "default"}).json()["total"] == 0
        query = client.post("/query", json={"question": "linn", "generate": False}).json()
        assert query["sources"] and all(s["filename"] == text_file.name for s in query["sources"])
