"""The shared pytest fixtures of ragstack's tests, registered from tests/conftest.py (`pytest_plugins`).

- models: `shared_model_dir` (session, autouse): one RAG_MODEL_DIR for every data dir of the session;
- profiles: `make_tiny_profile` (factory, see `app.testing.profiles.tiny_profile`);
- real documents: the fixtures of `app.testing.corpus` (registered with this plugin);
- servers: `llama_server` (session), `redis_server`, `throwaway_postgres`, `pg_dsn` (the test PostgreSQL),
  `s3_server` (a fresh bucket on the session's S3-protocol server) and `own_s3_server` (one the test may stop);
- fault-injecting fakes: `fake_ollama`, `fake_openai` (module-wide: each test sets `mode` or calls `reset()`).

It also adds `app.testing` to Haystack's HAYSTACK_DESERIALIZATION_ALLOWLIST for the session (inherited by worker
processes and served subprocesses), so pipeline YAML used by tests may name the test support's converter
(`app.testing.fault_injecting_converter`); the product's allowlist (`app.pipeline_loader.ALLOWED_MODULES`) and the
shipped YAML do not name it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.testing import servers
from app.testing.fakes import FakeOllama, FakeOpenAI
from app.testing.profiles import tiny_profile
from app.testing.servers import LlamaServer, S3Bucket, ThrowawayPostgres
from components.converters.isolated_converter import DESERIALIZATION_ALLOWLIST_ENV

pytest_plugins = ["app.testing.corpus"]

PG_TEST_DSN = os.environ.get("RAG_TEST_PG_DSN", "postgresql://rag:rag@127.0.0.1:5432/rag")


TEST_SUPPORT_MODULE = "app.testing"


INGEST_WORKER_ENV = "RAG_INGEST_WORKER"
MODEL_DIR_ENV = "RAG_MODEL_DIR"


def pytest_configure(config: pytest.Config) -> None:
    """Trust the test support's components in pipeline YAML for this session (inherited by worker processes).

    Apps built in the test process (TestClient) index in it (`RAG_INGEST_WORKER=false`, so tests can patch what
    indexing does); servers started by `app.testing.servers` run as deployed, with the indexing worker process."""
    os.environ.setdefault(INGEST_WORKER_ENV, "false")
    patterns = [p for p in os.environ.get(DESERIALIZATION_ALLOWLIST_ENV, "").split(",") if p.strip()]
    if TEST_SUPPORT_MODULE not in patterns:
        os.environ[DESERIALIZATION_ALLOWLIST_ENV] = ",".join([*patterns, TEST_SUPPORT_MODULE])


@pytest.fixture(scope="session", autouse=True)
def shared_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every data directory of the session shares one model folder (RAG_MODEL_DIR, in the session's temp dir unless
    set): the packaged LLM is reassembled (1.1 GB) and the int8 embedder derived once per session, not per test."""
    if MODEL_DIR_ENV not in os.environ:
        os.environ[MODEL_DIR_ENV] = str(tmp_path_factory.mktemp("models", numbered=False))
    return Path(os.environ[MODEL_DIR_ENV])


@pytest.fixture(scope="session")
def make_tiny_profile() -> Callable[..., Path]:
    """Factory: `make_tiny_profile(target_dir, max_tokens=32, profile="default")` -> a pipelines dir, tiny model."""
    return tiny_profile


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    """The test PostgreSQL (started by scripts/postgres.sh); unreachable is an error, never a skip."""
    import psycopg

    try:
        with psycopg.connect(PG_TEST_DSN, connect_timeout=3) as connection:
            connection.execute("SELECT 1")
    except psycopg.OperationalError as error:
        pytest.fail(f"PostgreSQL at {PG_TEST_DSN} is not reachable (run scripts/postgres.sh): {error}")
    return PG_TEST_DSN


@pytest.fixture
def pg_schema_url(pg_dsn: str) -> Iterator[str]:
    """The test PostgreSQL with a schema of this test's own first on the search path (dropped at teardown): a state
    URL (RAG_STATE_URL) whose tables no other test sees."""
    with servers.pg_schema(pg_dsn) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def state_url(request: pytest.FixtureRequest) -> str | None:
    """Each state test twice: on SQLite (None: files under the data dir) and on PostgreSQL (a schema of its own)."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("pg_schema_url")
    return url


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throwaway `redis-server` on a free 127.0.0.1 port, no persistence; yields its URL."""
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed: apt-get install redis-server (scripts/apt-packages-test.txt)")
    with servers.redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's S3-protocol server (a real HTTP server on 127.0.0.1) for the session; its endpoint URL."""
    with servers.s3_server(tmp_path_factory.mktemp("s3")) as server:
        yield server.url


def _use_s3(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    """Point the standard AWS configuration of this test at `endpoint` (no profile or config file of the host)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    for name, value in servers.S3_TEST_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)


@pytest.fixture
def s3_server(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> S3Bucket:
    """A fresh bucket on the session's S3 server, with AWS_ENDPOINT_URL, test credentials and region set for the
    test: `S3BlobStore(bucket.blob_url)` (or RAG_BLOB_URL=bucket.blob_url) reaches it through the real boto3."""
    _use_s3(monkeypatch, s3_endpoint)
    return S3Bucket.create(s3_endpoint, f"test-{uuid.uuid4().hex[:16]}")


@pytest.fixture
def own_s3_server(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Bucket]:
    """`s3_server` on an S3 server of the test's own (`.server.stop()` takes the storage away), stopped at teardown."""
    with servers.s3_server(tmp_path_factory.mktemp("own-s3")) as server:
        _use_s3(monkeypatch, server.url)
        yield S3Bucket.create(server.url, "own-bucket", server=server)


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """`python -m llama_cpp.server` with the packaged SmolLM2 GGUF, serving the model name `gpt-4o-mini`."""
    from components.generators.gguf_models import resolve_gguf

    root = tmp_path_factory.mktemp("llama-server")
    model = resolve_gguf("smollm2-135m-instruct-q4_1", cache_dir=str(root / "models"))
    with servers.llama_cpp_server(Path(model), root) as server:
        yield server


@pytest.fixture
def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    """A PostgreSQL 15 cluster of its own on a free port, removed at teardown."""
    if not (servers.PG_BIN / "initdb").exists():
        pytest.fail("PostgreSQL 15 is not installed: run scripts/postgres.sh")
    data_dir = Path(tempfile.mkdtemp(prefix="rag-pg-"))
    try:
        with ThrowawayPostgres.running(data_dir) as cluster:
            yield cluster
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def fake_ollama() -> Iterator[FakeOllama]:
    """A fault-injecting Ollama on 127.0.0.1 (`app.testing.fakes.FakeOllama`)."""
    with FakeOllama() as fake:
        yield fake


@pytest.fixture(scope="module")
def fake_openai() -> Iterator[FakeOpenAI]:
    """A fault-injecting OpenAI-compatible server, module-wide: each test sets `mode` or calls `reset()`."""
    with FakeOpenAI() as fake:
        yield fake
