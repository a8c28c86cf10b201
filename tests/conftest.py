"""Test-wide guards: no network beyond loopback, no telemetry, a private data dir per test session."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


class UnexpectedNetworkCall(RuntimeError):
    """Raised when a test tries to reach anything but this machine."""


def _is_local(address: Any) -> bool:
    if isinstance(address, str | bytes):  # AF_UNIX socket path
        return True
    host = address[0]
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded_connect(self: socket.socket, address: Any) -> Any:
    if not _is_local(address):
        raise UnexpectedNetworkCall(f"test tried to connect to {address!r}")
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> Any:
    if not _is_local(address):
        raise UnexpectedNetworkCall(f"test tried to connect to {address!r}")
    return _real_connect_ex(self, address)


@pytest.fixture(autouse=True)
def _no_network(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Any connection to a non-loopback address fails the test (tests marked `live` are exempt)."""
    if request.node.get_closest_marker("live") is not None:
        yield
        return
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", _guarded_connect_ex)
    yield


def pytest_configure(config: pytest.Config) -> None:
    """Register tests/fixtures_corpus.py (real documents) and tests/servers.py (real local servers) as plugins.

    It is loaded by file path: putting tests/ on sys.path would let tests/components/ (a folder without
    __init__.py) shadow the real `components` package.
    """
    import importlib.util
    import sys
    from pathlib import Path

    for name in ("fixtures_corpus", "servers"):
        if config.pluginmanager.has_plugin(name):
            continue
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        config.pluginmanager.register(module, name)


PROJECT_ROOT = Path(__file__).resolve().parent.parent
PG_TEST_DSN = os.environ.get("RAG_TEST_PG_DSN", "postgresql://rag:rag@127.0.0.1:5432/rag")


def _make_tiny_profile(target: Path, max_tokens: int = 32, profile: str = "default") -> Path:
    """Copy a shipped profile to `target` with the tiny SmolLM2 model (fast; answer quality not under test).

    A pgvector copy gets its own table (`t_<random>`), so test modules never see each other's rows.
    """
    import shutil
    import uuid

    import yaml

    from app.pipeline_loader import PIPELINE_FILES, pipeline_file

    source = PROJECT_ROOT / "pipelines" if profile == "default" else PROJECT_ROOT / "pipelines" / "profiles" / profile
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("profiles"))
    for name in PIPELINE_FILES:  # a file the profile leaves to the default is copied from there
        if not (target / f"{name}.yml").is_file():
            shutil.copyfile(pipeline_file(source, name), target / f"{name}.yml")
    query = yaml.safe_load((target / "query.yml").read_text())
    if query["components"]["llm"]["type"].endswith("PackagedLlamaCppChatGenerator"):
        query["components"]["llm"]["init_parameters"]["model"] = "smollm2-135m-instruct-q4_1"
        query["components"]["llm"]["init_parameters"]["generation_kwargs"]["max_tokens"] = max_tokens
    documents = [query]
    indexing = yaml.safe_load((target / "indexing.yml").read_text())
    documents.append(indexing)
    table = f"t_{uuid.uuid4().hex[:12]}"
    for pipeline in documents:
        for spec in pipeline["components"].values():
            store = spec.get("init_parameters", {}).get("document_store")
            if store and store["type"].endswith("PgvectorDocumentStore"):
                store["init_parameters"].update(
                    table_name=table, hnsw_index_name=f"{table}_hnsw", keyword_index_name=f"{table}_tsv"
                )
    (target / "query.yml").write_text(yaml.safe_dump(query, sort_keys=False))
    (target / "indexing.yml").write_text(yaml.safe_dump(indexing, sort_keys=False))
    return target


@pytest.fixture(scope="session")
def make_tiny_profile() -> Any:
    """Factory: `make_tiny_profile(target_dir, max_tokens=32, profile="default")` -> a pipelines dir, tiny model."""
    return _make_tiny_profile


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
