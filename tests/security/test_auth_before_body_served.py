"""Issue 13, finding 2 against a real `rag serve` (uvicorn, auth on): the 401 comes from the request head alone, the
connection is closed instead of draining the body, and the server's RSS stays flat."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

pytestmark = pytest.mark.integration

MB = 1024 * 1024
PIECE = b"y" * (64 * 1024)


@pytest.fixture(scope="module")
def served(tmp_path_factory, make_tiny_profile) -> Iterator[tuple[str, int, Path]]:
    from app.testing.servers import rag_server

    root = tmp_path_factory.mktemp("served-auth")
    spool = root / "tmp"
    spool.mkdir()
    pipelines = make_tiny_profile(root / "pipelines")
    with rag_server(pipelines, root / "data", env={"TMPDIR": str(spool)}, auth=True) as server:
        yield server.url, server.proc.pid, spool


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _read_response(sock: socket.socket) -> bytes:
    """A whole response (head and Content-Length body), or what arrived before the socket's timeout."""
    received = b""
    try:
        while True:
            head, _, body = received.partition(b"\r\n\r\n")
            if _:
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                if len(body) >= length:
                    return received
            more = sock.recv(65536)
            if not more:
                return received
            received += more
    except TimeoutError:
        return received


def _send_without_key(url: str, head: str, total: int, *, chunked: bool) -> tuple[bytes, int, float]:
    """Send the request head, wait up to 5 s for an answer before any body byte, then try to send `total` body
    bytes. The answer seen before the body (b"" if none), the body bytes the socket accepted, the seconds taken."""
    parts = urlsplit(url)
    started = time.monotonic()
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(head.encode("latin-1"))
        early = _read_response(sock)
        piece = b"%x\r\n%s\r\n" % (len(PIECE), PIECE) if chunked else PIECE
        sent = 0
        try:
            while sent < total:
                sock.sendall(piece)
                sent += len(PIECE)
        except OSError:  # the server closed the connection: the rest of the body is never sent
            pass
    return early, sent, time.monotonic() - started


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_unauthenticated_190mb_json_body_to_a_served_app_is_401_unread_with_flat_rss(served, chunked):
    url, pid, _ = served
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {190 * MB}"
    head = f"POST /query HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n{framing}\r\n\r\n"
    rss_before = _rss(pid)
    early, sent, seconds = _send_without_key(url, head, 190 * MB, chunked=chunked)
    grown = _rss(pid) - rss_before
    assert early.startswith(b"HTTP/1.1 401"), early[:200]
    assert b'"code":"unauthorized"' in early
    assert sent < 32 * MB, f"the server accepted {sent / MB:.0f} MiB of a refused body"
    assert grown < 32 * MB, f"server RSS grew {grown / MB:.0f} MiB"
    assert seconds < 30
    assert httpx.get(f"{url}/health", timeout=5).status_code == 200


def test_unauthenticated_multipart_upload_to_a_served_app_is_401_and_spools_nothing(served):
    url, _, spool = served
    head = (
        "POST /documents/upload HTTP/1.1\r\nHost: test\r\n"
        f"Content-Type: multipart/form-data; boundary=b0undary\r\nContent-Length: {100 * MB}\r\n\r\n"
        '--b0undary\r\nContent-Disposition: form-data; name="files"; filename="payroll.txt"\r\n\r\n'
    )
    listed = set(spool.iterdir())  # the server's TMPDIR
    early, sent, _ = _send_without_key(url, head, 100 * MB, chunked=False)
    assert early.startswith(b"HTTP/1.1 401"), early[:200]
    assert sent < 32 * MB
    assert set(spool.iterdir()) == listed
