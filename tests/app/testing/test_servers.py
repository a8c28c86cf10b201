"""app.testing.servers: the one server-process helper starts, waits, reports failures with the log, and stops."""

import sys
import time

import httpx
import pytest

from app.testing.servers import ServerNotReady, free_port, http_ok, log_contains, server_process, stop


def _http_server(port: int) -> list[str]:
    return [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]


def test_starts_on_a_free_port_waits_until_ready_and_stops(tmp_path):
    log = tmp_path / "logs" / "server.log"
    with server_process(_http_server, log=log, seconds=30) as server:
        assert server.url == f"http://127.0.0.1:{server.port}"
        assert httpx.get(f"{server.url}/", timeout=5).status_code == 200
        proc = server.proc
    assert proc.poll() is not None  # stopped at exit
    assert "GET / HTTP" in log.read_text()


def test_a_process_that_exits_early_fails_with_its_log(tmp_path):
    command = [sys.executable, "-c", "import sys; print('cannot bind: port taken'); sys.exit(3)"]
    with pytest.raises(ServerNotReady, match=r"(?s)exited \(3\).*cannot bind: port taken"):
        with server_process(command, log=tmp_path / "x.log", what="x"):
            pytest.fail("never ready")


def test_a_process_never_ready_is_stopped_after_the_wait(tmp_path):
    command = [sys.executable, "-c", "import time; print('starting', flush=True); time.sleep(60)"]
    started = time.monotonic()
    with pytest.raises(ServerNotReady, match=r"(?s)not ready in 1 s.*starting"):
        with server_process(command, log=tmp_path / "x.log", ready=lambda _port: lambda: False, seconds=1):
            pytest.fail("never ready")
    assert time.monotonic() - started < 30


def test_readiness_from_the_log(tmp_path):
    log = tmp_path / "worker.log"
    command = [sys.executable, "-c", "import time; print('Job worker ready', flush=True); time.sleep(60)"]
    with server_process(command, log=log, ready=lambda _port: log_contains(log, "Job worker ready")) as server:
        assert server.proc.poll() is None
    assert server.proc.poll() is not None


def test_http_ok_needs_200_and_the_acceptance_check(tmp_path):
    assert http_ok(f"http://127.0.0.1:{free_port()}/")() is False  # nothing listens
    with server_process(_http_server, log=tmp_path / "s.log", seconds=30) as server:
        assert http_ok(f"{server.url}/")() is True
        assert http_ok(f"{server.url}/no-such-file")() is False
        assert http_ok(f"{server.url}/", accept=lambda response: "no such text" in response.text)() is False


def test_stop_is_harmless_on_a_process_that_is_gone(tmp_path):
    with server_process(_http_server, log=tmp_path / "s.log", seconds=30) as server:
        server.proc.kill()
        server.proc.wait(timeout=10)
        stop(server.proc)
    assert server.proc.returncode == -9
