import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings


@pytest.fixture(scope="module")
def api_settings(tmp_path_factory, make_tiny_profile):
    root = tmp_path_factory.mktemp("api")
    return Settings(data_dir=root / "data", pipelines_dir=make_tiny_profile(root / "pipelines"), max_upload_mb=1)


@pytest.fixture(scope="module")
def client(api_settings):
    with TestClient(create_app(api_settings)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def tiny_profile_dir(tmp_path_factory, make_tiny_profile):
    return make_tiny_profile(tmp_path_factory.mktemp("server") / "pipelines")
