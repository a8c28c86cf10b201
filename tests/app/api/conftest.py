"""The REST API suite runs once per store profile: embedded LanceDB and PostgreSQL + pgvector."""

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from app.testing.api import admin_headers

STORE_PROFILES = [
    pytest.param("default", id="lancedb"),
    pytest.param("pgvector", id="pgvector", marks=pytest.mark.postgres),
]


@pytest.fixture(scope="module", params=STORE_PROFILES)
def store_profile(request):
    """The profile under test; the pgvector one points PG_CONN_STR at the test database."""
    if request.param == "pgvector":
        dsn = request.getfixturevalue("pg_dsn")
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("PG_CONN_STR", dsn)
            yield request.param
    else:
        yield request.param


@pytest.fixture(scope="module")
def api_settings(tmp_path_factory, make_tiny_profile, store_profile):
    root = tmp_path_factory.mktemp("api")
    pipelines = make_tiny_profile(root / "pipelines", profile=store_profile)
    return Settings(data_dir=root / "data", pipelines_dir=pipelines, max_upload_mb=1, rate_limit="off")


@pytest.fixture(scope="module")
def auth_headers(api_settings):
    """An admin API key on every collection (auth is on in the suite, as in production)."""
    return admin_headers(api_settings.data_dir)


@pytest.fixture(scope="module")
def client(api_settings, auth_headers):
    app = create_app(api_settings)
    with TestClient(app, headers=auth_headers) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def tiny_profile_dir(tmp_path_factory, make_tiny_profile, store_profile):
    return make_tiny_profile(tmp_path_factory.mktemp("server") / "pipelines", profile=store_profile)
