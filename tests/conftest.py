"""Test-wide guards: no network beyond loopback, no telemetry. The shared fixtures come from `app.testing.plugin`."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest

os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

pytest_plugins = ["app.testing.plugin"]  # after the environment above: the plugin imports app modules

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
