"""The red-team reproductions run against the real app (auth on, default profile with the tiny model), in-process.

`asgi_call` drives the app through its ASGI interface with a counting `receive`, so a test can tell how much of a
request body the server pulled before it answered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from app.testing.api import admin_headers

CHUNK = 64 * 1024


@pytest.fixture(scope="module")
def security_settings(tmp_path_factory, make_tiny_profile) -> Settings:
    root = tmp_path_factory.mktemp("security")
    pipelines = make_tiny_profile(root / "pipelines")
    return Settings(data_dir=root / "data", pipelines_dir=pipelines, max_upload_mb=1, rate_limit="off")


@pytest.fixture(scope="module")
def admin(security_settings) -> dict[str, str]:
    """Headers with an admin key on every collection."""
    return admin_headers(security_settings.data_dir)


@pytest.fixture(scope="module")
def app_client(security_settings, admin) -> Iterator[TestClient]:
    """The app with auth on; the client sends no key unless a test passes one."""
    with TestClient(create_app(security_settings)) as client:
        yield client


@dataclass
class AsgiResult:
    status: int
    headers: dict[str, str]
    body: bytes
    pulled: int  # `receive` calls that returned body bytes
    bytes_pulled: int = 0
    messages: list[dict[str, Any]] = field(default_factory=list)


def asgi_call(
    client: TestClient,
    method: str,
    path: str,
    headers: dict[str, str],
    *,
    total_bytes: int,
    chunk: Callable[[], bytes] = lambda: b"y" * CHUNK,
    extra_headers: tuple[tuple[str, str], ...] | list[tuple[str, str]] = (),
) -> AsgiResult:
    """Send `method path` with a body of `total_bytes` in 64 KiB chunks (each a fresh allocation) through the app's
    event loop; the response and how many chunks the app pulled."""
    pulled = 0
    bytes_pulled = 0
    chunks = max(1, -(-total_bytes // CHUNK))

    async def receive() -> dict[str, Any]:
        nonlocal pulled, bytes_pulled
        if pulled >= chunks:
            return {"type": "http.disconnect"}
        pulled += 1
        body = chunk()
        bytes_pulled += len(body)
        return {"type": "http.request", "body": body, "more_body": pulled < chunks}

    messages: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in [*headers.items(), *extra_headers]
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "state": {},
    }
    assert client.portal is not None
    client.portal.call(client.app, scope, receive, send)
    start = next(m for m in messages if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    response_headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in start["headers"]}
    return AsgiResult(start["status"], response_headers, body, pulled, bytes_pulled, messages)


@pytest.fixture
def asgi() -> Callable[..., AsgiResult]:
    return asgi_call


@pytest.fixture(scope="module")
def api_settings(tmp_path_factory, make_tiny_profile):
    root = tmp_path_factory.mktemp("security")
    return Settings(data_dir=root / "data", pipelines_dir=make_tiny_profile(root / "pipelines"), rate_limit="off")


@pytest.fixture(scope="module")
def auth_headers(api_settings):
    """An admin API key on every collection (auth is on, as in production)."""
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
