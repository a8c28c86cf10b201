"""Finding: `/docs` loaded Swagger UI from a CDN without SRI on the origin whose sessionStorage holds the demo page's
API key. With auth on, Swagger UI and ReDoc are off; the demo page loads only its own files (CSP)."""

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings

pytestmark = pytest.mark.integration


def test_redteam_swagger_ui_from_cdn_is_off_when_auth_is_on(client):
    """Not served to anyone: 404 with a key; without one 401 or 404 (an unknown path needs a key first)."""
    anonymous = TestClient(client.app)
    for route in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        for http, statuses in ((client, {404}), (anonymous, {401, 404})):
            response = http.get(route)
            assert response.status_code in statuses, (route, response.text[:200])
            assert "cdn.jsdelivr.net" not in response.text and "swagger" not in response.text.lower()


def test_openapi_schema_stays_public_for_tooling(client):
    response = TestClient(client.app).get("/openapi.json")
    assert response.status_code == 200
    assert "/query" in response.json()["paths"]


def test_demo_page_has_a_strict_content_security_policy(client):
    response = TestClient(client.app).get("/")
    assert response.status_code == 200
    policy = response.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "default-src 'self'" in policy and "http" not in policy


def test_dev_mode_keeps_the_interactive_docs(tmp_path, make_tiny_profile):
    settings = Settings(data_dir=tmp_path / "data", pipelines_dir=make_tiny_profile(tmp_path / "p"), dev_mode=True)
    dev = TestClient(create_app(settings))  # no lifespan: the docs need no pipelines
    assert dev.get("/docs").status_code == 200
