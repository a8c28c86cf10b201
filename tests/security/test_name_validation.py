"""Finding: `re.match` + `$` let `alpha\n` through as a collection name or tag key; names are full-matched now."""

import json

import pytest

pytestmark = pytest.mark.integration

TRAILING_NEWLINE = "alpha\n"


def test_redteam_collection_alpha_newline_refused_on_create(client):
    response = client.post("/collections", json={"name": TRAILING_NEWLINE})
    assert response.status_code in (400, 422), response.text
    assert TRAILING_NEWLINE not in [c["name"] for c in client.get("/collections").json()]


def test_redteam_collection_alpha_newline_refused_on_upload(client):
    files = [("files", ("a.txt", b"some text about alpha", "text/plain"))]
    response = client.post("/documents/upload", files=files, data={"collection": TRAILING_NEWLINE})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_input"


def test_redteam_collection_alpha_newline_refused_on_query(client):
    for route in ("/query", "/query/stream"):
        response = client.post(route, json={"question": "alpha?", "collection": TRAILING_NEWLINE})
        assert response.status_code == 400, (route, response.text)


def test_redteam_tag_key_alpha_newline_refused(client):
    files = [("files", ("b.txt", b"some text about tags", "text/plain"))]
    response = client.post(
        "/documents/upload", files=files, data={"collection": "tags", "metadata": json.dumps({TRAILING_NEWLINE: "x"})}
    )
    assert response.status_code == 400, response.text
    assert "invalid tag name" in response.json()["error"]["message"]


def test_redteam_filter_field_with_newline_refused(client):
    filters = {"field": "meta.alpha\n", "operator": "==", "value": "x"}
    response = client.post("/query", json={"question": "alpha?", "collection": "tags", "filters": filters})
    assert response.status_code == 400, response.text
