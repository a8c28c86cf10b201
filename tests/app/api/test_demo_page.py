"""The demo page and its assets are served by the app (no pipelines needed: the lifespan is not run)."""

import re

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings


@pytest.fixture(scope="module")
def plain_client(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo-page")
    app = create_app(Settings(data_dir=root / "data", pipelines_dir=root / "pipelines", dev_mode=True))
    return TestClient(app)  # no `with`: the lifespan (pipeline loading) never runs


def test_root_serves_the_demo_page(plain_client):
    response = plain_client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert 'id="app"' in html
    assert '<script src="/static/app.js"' in html and 'href="/static/style.css"' in html
    assert "default-src 'self'" in response.headers["content-security-policy"]
    # nothing is loaded from another origin: every src/href is local (or a data: URL or a fragment)
    for url in re.findall(r'(?:src|href)="([^"]*)"', html):
        assert url.startswith(("/", "#", "data:")), url


def test_static_assets_are_served(plain_client):
    script = plain_client.get("/static/app.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert "/query/stream" in script.text and "XMLHttpRequest" in script.text
    style = plain_client.get("/static/style.css")
    assert style.status_code == 200 and style.headers["content-type"].startswith("text/css")
    assert "http" not in style.text  # no external fonts or images


def test_demo_is_not_in_the_api_schema_and_unknown_assets_are_json_404(plain_client):
    assert "/" not in plain_client.get("/openapi.json").json()["paths"]
    missing = plain_client.get("/static/nope.js")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
