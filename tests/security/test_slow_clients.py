"""Finding: no header or body read timeouts: a client that sends headers then stalls the body, or sends half its
headers, held its connection (and temp files) forever. A real `rag serve` now answers 408 or drops it in time."""

import socket
import time

import httpx
import pytest

from app.testing.servers import serve_rag

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TIMEOUT_S = 1.0
SLACK_S = 4.0


@pytest.fixture(scope="module")
def server(tmp_path_factory, make_tiny_profile):
    root = tmp_path_factory.mktemp("slow-clients")
    env = {"RAG_BODY_READ_TIMEOUT_S": str(TIMEOUT_S), "RAG_HEADER_READ_TIMEOUT_S": str(TIMEOUT_S)}
    with serve_rag(make_tiny_profile(root / "pipelines"), root / "data", env=env) as base:
        yield base


def _connect(base: str) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=TIMEOUT_S + SLACK_S + 5)
    return sock


def _read_until_closed(sock: socket.socket) -> tuple[bytes, float]:
    started = time.monotonic()
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received, time.monotonic() - started


def test_redteam_headers_then_stalled_body_gets_408_and_close(server):
    with _connect(server) as sock:
        sock.sendall(
            b"POST /query HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n"
            b'{"question": "wh'
        )
        received, waited = _read_until_closed(sock)  # ends when the server closes the connection
    assert received.startswith(b"HTTP/1.1 408"), received[:200]
    assert b"request_timeout" in received
    assert waited < TIMEOUT_S + SLACK_S


def test_redteam_multipart_upload_that_stalls_gets_408(server):
    with _connect(server) as sock:
        sock.sendall(
            b"POST /documents/upload HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: 100000\r\n\r\n"
            b'--xyz\r\nContent-Disposition: form-data; name="files"; filename="a.txt"\r\n\r\nsome text'
        )
        received, waited = _read_until_closed(sock)
    assert received.startswith(b"HTTP/1.1 408"), received[:200]
    assert waited < TIMEOUT_S + SLACK_S


def test_redteam_partial_headers_are_dropped(server):
    with _connect(server) as sock:
        sock.sendall(b"POST /query HTTP/1.1\r\nHost: localhost\r\nContent-Le")
        received, waited = _read_until_closed(sock)
    assert received == b""  # closed without an answer
    assert waited < TIMEOUT_S + SLACK_S


def test_an_idle_new_connection_is_dropped(server):
    with _connect(server) as sock:
        _, waited = _read_until_closed(sock)
    assert waited < TIMEOUT_S + SLACK_S


def test_well_behaved_clients_are_unaffected(server):
    with httpx.Client(base_url=server, timeout=60) as http:
        for _ in range(2):  # a kept-alive connection serves the next request after an idle pause
            response = http.post("/query", json={"question": "anything", "collection": "none", "generate": False})
            assert response.status_code == 200, response.text
            time.sleep(TIMEOUT_S * 1.5)
        with http.stream("POST", "/query/stream", json={"question": "anything", "collection": "none"}) as stream:
            text = "".join(stream.iter_text())
        assert "event: error" not in text and "event: done" in text
