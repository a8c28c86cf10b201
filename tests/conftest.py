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
def _no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Any connection to a non-loopback address fails the test."""
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", _guarded_connect_ex)
    yield


def pytest_configure(config: pytest.Config) -> None:
    """Register tests/fixtures_corpus.py (real-document fixtures) as a plugin.

    It is loaded by file path: putting tests/ on sys.path would let tests/components/ (a folder without
    __init__.py) shadow the real `components` package.
    """
    import importlib.util
    import sys
    from pathlib import Path

    name = "fixtures_corpus"
    if config.pluginmanager.has_plugin(name):
        return
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    config.pluginmanager.register(module, name)


def _make_tiny_profile(target: Path, max_tokens: int = 32) -> Path:
    """Copy the shipped pipelines to `target` with the tiny SmolLM2 model (fast; answer quality not under test)."""
    import shutil

    import yaml

    shutil.copytree(Path(__file__).resolve().parent.parent / "pipelines", target)
    query = yaml.safe_load((target / "query.yml").read_text())
    query["components"]["llm"]["init_parameters"]["model"] = "smollm2-135m-instruct-q4_1"
    query["components"]["llm"]["init_parameters"]["generation_kwargs"]["max_tokens"] = max_tokens
    (target / "query.yml").write_text(yaml.safe_dump(query, sort_keys=False))
    return target


@pytest.fixture(scope="session")
def make_tiny_profile() -> Any:
    """Factory: `make_tiny_profile(target_dir, max_tokens=32)` -> a pipelines dir using the tiny model."""
    return _make_tiny_profile
