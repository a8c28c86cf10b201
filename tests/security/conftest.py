"""Red-team reproductions run against the real app (auth on, LanceDB profile, tiny model)."""

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings


@pytest.fixture(scope="module")
def api_settings(tmp_path_factory, make_tiny_profile):
    root = tmp_path_factory.mktemp("security")
    return Settings(data_dir=root / "data", pipelines_dir=make_tiny_profile(root / "pipelines"), rate_limit="off")


@pytest.fixture(scope="module")
def auth_headers(api_settings):
    """An admin API key on every collection (auth is on, as in production)."""
    from servers import admin_headers  # a plugin registered in pytest_configure

    return admin_headers(api_settings.data_dir)


@pytest.fixture(scope="module")
def client(api_settings, auth_headers):
    with TestClient(create_app(api_settings), headers=auth_headers) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def indexed(client, html_file):
    """A collection `sec` holding one HTML document."""
    files = [("files", (html_file.name, html_file.read_bytes(), "text/html"))]
    response = client.post("/documents/upload", files=files, data={"collection": "sec"})
    assert response.status_code == 200, response.text
    return html_file.name
