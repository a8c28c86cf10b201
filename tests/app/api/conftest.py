import shutil

import pytest
import yaml
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import PROJECT_ROOT, Settings


def make_tiny_profile(target):
    """The shipped pipelines with the tiny SmolLM2 model (fast; answer quality is not under test here)."""
    shutil.copytree(PROJECT_ROOT / "pipelines", target)
    query = yaml.safe_load((target / "query.yml").read_text())
    query["components"]["llm"]["init_parameters"]["model"] = "smollm2-135m-instruct-q4_1"
    query["components"]["llm"]["init_parameters"]["generation_kwargs"]["max_tokens"] = 32
    (target / "query.yml").write_text(yaml.safe_dump(query, sort_keys=False))
    return target


@pytest.fixture(scope="module")
def api_settings(tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    return Settings(data_dir=root / "data", pipelines_dir=make_tiny_profile(root / "pipelines"), max_upload_mb=1)


@pytest.fixture(scope="module")
def client(api_settings):
    with TestClient(create_app(api_settings)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def tiny_profile_dir(tmp_path_factory):
    return make_tiny_profile(tmp_path_factory.mktemp("server") / "pipelines")
