"""A restarted service (a new app over the same settings) sees everything the previous one indexed, on both stores."""

from fastapi.testclient import TestClient

from app.main import create_app


def test_documents_survive_a_restart(api_settings, auth_headers, html_file):
    files = [("files", (html_file.name, html_file.read_bytes()))]
    search = {"question": "Is Python free to use commercially?", "collection": "restart", "generate": False}
    with TestClient(create_app(api_settings), headers=auth_headers) as first:
        assert first.post("/documents/upload", files=files, data={"collection": "restart"}).status_code == 200
        before = first.post("/query", json=search).json()["sources"]
        listed = first.get("/documents", params={"collection": "restart"}).json()
    assert listed["total"] == 1 and before
    with TestClient(create_app(api_settings), headers=auth_headers) as second:
        assert second.get("/documents", params={"collection": "restart"}).json() == listed
        assert second.post("/query", json=search).json()["sources"] == before
        again = second.post("/documents/upload", files=files, data={"collection": "restart"}).json()
        assert again["files"][0]["status"] == "unchanged"  # the same source's current content: nothing written
