"""Real local servers for tests: `rag serve` / `rag worker` processes, a llama.cpp OpenAI-compatible server, a
fault-injecting HTTP server, a throwaway PostgreSQL cluster and a throwaway Redis. Loaded as a pytest plugin from
tests/conftest.py."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(url: str, proc: subprocess.Popen, log: Path, seconds: float = 120) -> None:
    """Poll `url` until it answers 200; fail with the process log if it exits or the time runs out."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"process exited ({proc.returncode}):\n{log.read_text()[-4000:]}"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    pytest.fail(f"{url} did not answer in {seconds} s:\n{log.read_text()[-4000:]}")


def stop(proc: subprocess.Popen) -> None:
    """Terminate a server process, killing it if it does not stop in 30 s."""
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


JOB_TERMINAL = {"done", "failed", "cancelled"}


def admin_headers(data_dir: Path, *, role: str = "admin", collections: frozenset[str] | None = None) -> dict[str, str]:
    """Headers carrying a new API key (admin on every collection unless told otherwise) of the data dir's key store."""
    from app.services.api_keys import KeyStore, Role
    from app.settings import Settings

    created = KeyStore(Settings(data_dir=data_dir).keys_db).create(
        name="tests", role=Role(role), collections=collections
    )
    assert created is not None
    return {"Authorization": f"Bearer {created[1]}"}


def wait_for_job(
    client: Any, job_id: str, *, until: set[str] = JOB_TERMINAL, seconds: float = 180
) -> tuple[dict, list]:
    """Poll `GET /jobs/{id}` (TestClient or httpx client) until the state is in `until`; the job and states seen."""
    seen: list[str] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        response = client.get(f"/jobs/{job_id}")
        assert response.status_code == 200, response.text
        job = response.json()
        if not seen or seen[-1] != job["state"]:
            seen.append(job["state"])
        if job["state"] in until:
            return job, seen
        time.sleep(0.02)
    pytest.fail(f"job {job_id} still {seen[-1]} after {seconds} s")


@dataclass
class RagServer:
    """A running `rag serve`: its base URL, process (to kill it) and log."""

    url: str
    proc: subprocess.Popen
    log: Path


def _rag_environment(
    pipelines_dir: Path, data_dir: Path, env: dict[str, str] | None, auth: bool = False
) -> dict[str, str]:
    """Without `auth` the server runs in dev mode (no API keys); with it, requests need one (`admin_headers`)."""
    return {
        **os.environ,
        "RAG_DATA_DIR": str(data_dir),
        "RAG_PIPELINES_DIR": str(pipelines_dir),
        "RAG_DEV_MODE": "false" if auth else "true",
        **(env or {}),
    }


@contextmanager
def rag_server(
    pipelines_dir: Path,
    data_dir: Path,
    *,
    env: dict[str, str] | None = None,
    log_name: str = "server.log",
    auth: bool = False,
) -> Iterator[RagServer]:
    """A real `rag serve` (uvicorn) on a free 127.0.0.1 port, ready (`/ready` 200); stopped (or reaped) at exit."""
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / log_name
    rag = str(Path(sys.executable).parent / "rag")
    with log.open("w") as out:
        proc = subprocess.Popen(
            [rag, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=_rag_environment(pipelines_dir, data_dir, env, auth),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{base}/ready", proc, log)
        yield RagServer(url=base, proc=proc, log=log)
    finally:
        stop(proc)


@contextmanager
def serve_rag(
    pipelines_dir: Path, data_dir: Path, *, env: dict[str, str] | None = None, auth: bool = False
) -> Iterator[str]:
    """A real `rag serve` (uvicorn) on a free 127.0.0.1 port, ready (`/ready` 200); yields its base URL."""
    with rag_server(pipelines_dir, data_dir, env=env, auth=auth) as server:
        yield server.url


@contextmanager
def rag_worker(
    pipelines_dir: Path, data_dir: Path, *, env: dict[str, str] | None = None, log_name: str = "worker.log"
) -> Iterator[subprocess.Popen]:
    """A `rag worker` process (Redis job queue), ready once it logs that it listens."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / log_name
    rag = str(Path(sys.executable).parent / "rag")
    with log.open("w") as out:
        proc = subprocess.Popen(
            [rag, "worker"], env=_rag_environment(pipelines_dir, data_dir, env), stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 120
        while "Job worker ready" not in log.read_text():
            assert proc.poll() is None, f"rag worker exited ({proc.returncode}):\n{log.read_text()[-4000:]}"
            assert time.monotonic() < deadline, f"rag worker not ready in 120 s:\n{log.read_text()[-4000:]}"
            time.sleep(0.3)
        yield proc
    finally:
        stop(proc)


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throwaway `redis-server` on a free 127.0.0.1 port, no persistence; yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: apt-get install redis-server (scripts/apt-packages-test.txt)")
    root = tmp_path_factory.mktemp("redis")
    port = free_port()
    log = root / "redis.log"
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*command, "--dir", str(root)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, f"redis-server exited ({proc.returncode}):\n{log.read_text()[-2000:]}"
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"redis-server did not answer:\n{log.read_text()[-2000:]}"
            time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop(proc)


@dataclass
class LlamaServer:
    base_url: str
    log: Path

    def requests_seen(self) -> int:
        return self.log.read_text().count("POST /v1/chat/completions")


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """`python -m llama_cpp.server` with the packaged SmolLM2 GGUF, serving the model name `gpt-4o-mini`."""
    from components.generators.gguf_models import resolve_gguf

    root = tmp_path_factory.mktemp("llama-server")
    model = resolve_gguf("smollm2-135m-instruct-q4_1", cache_dir=str(root / "models"))
    port = free_port()
    log = root / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llama_cpp.server",
                "--model",
                str(model),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--n_ctx",
                "4096",
                "--n_threads",
                "2",
                "--model_alias",
                "gpt-4o-mini",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(f"http://127.0.0.1:{port}/v1/models", proc, log)
        yield LlamaServer(base_url=f"http://127.0.0.1:{port}/v1", log=log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


COMPLETION = {
    "id": "chatcmpl-fault",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "gpt-4o-mini",
    "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Recovered [1]."}}],
    "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13},
}


@dataclass
class FaultServer:
    """An OpenAI-compatible endpoint that fails on purpose: `mode` is ok, 429, 500, 503, hang or drop."""

    port: int
    mode: str = "ok"
    hang_seconds: float = 10.0
    requests: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


@pytest.fixture(scope="module")
def fault_server() -> Iterator[FaultServer]:
    """Module-wide; each test sets `mode` and clears `requests`."""
    state = FaultServer(port=free_port())

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            return

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            state.requests.append(self.path)
            if state.mode == "hang":
                time.sleep(state.hang_seconds)
                return
            if state.mode == "drop":
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            if state.mode in ("429", "500", "503"):
                payload = json.dumps({"error": {"message": f"injected {state.mode}", "type": "fault"}}).encode()
                self.send_response(int(state.mode))
                self.send_header("content-type", "application/json")
                self.send_header("retry-after-ms", "10")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            if json.loads(body or b"{}").get("stream"):
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.end_headers()
                for text in ("Recovered ", "[1]."):
                    chunk = {
                        **COMPLETION,
                        "object": "chat.completion.chunk",
                        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
                    }
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.write(b"data: [DONE]\n\n")
                self.close_connection = True
                return
            payload = json.dumps(COMPLETION).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", state.port), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@dataclass
class ThrowawayPostgres:
    """A PostgreSQL 15 cluster of its own (trust auth on 127.0.0.1), to stop and start without touching others."""

    data_dir: Path
    port: int

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            [*_as_postgres(), str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "-w", "-t", "60", *args],
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        self._ctl(
            "-o",
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data_dir}",
            "-l",
            str(self.data_dir / "log"),
            "start",
        )

    def stop(self) -> None:
        self._ctl("-m", "fast", "stop")


def _as_postgres() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


@pytest.fixture
def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    if not (PG_BIN / "initdb").exists():
        pytest.fail("PostgreSQL 15 is not installed: run scripts/postgres.sh")
    data_dir = Path(tempfile.mkdtemp(prefix="rag-pg-"))
    if os.geteuid() == 0:
        shutil.chown(data_dir, "postgres", "postgres")
    subprocess.run(
        [*_as_postgres(), str(PG_BIN / "initdb"), "-D", str(data_dir), "--auth=trust", "-U", "postgres"],
        check=True,
        capture_output=True,
    )
    cluster = ThrowawayPostgres(data_dir=data_dir, port=free_port())
    cluster.start()
    try:
        yield cluster
    finally:
        try:
            cluster.stop()
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(data_dir, ignore_errors=True)


OLLAMA_RECORDINGS = Path(__file__).resolve().parent / "contracts" / "recordings" / "ollama"
OLLAMA_HANG_SECONDS = 5.0  # longer than the tests' client timeout; the fixture releases hung handlers at teardown


def fake_embedding(text: str) -> list[float]:
    """The fake Ollama's deterministic embedding: the text's length and its number of words."""
    return [float(len(text)), float(len(text.split())), 1.0]


@dataclass
class FakeOllama:
    """What the fake Ollama saw, and the faults it still has to inject (one per request, in order)."""

    url: str = ""
    requests: list[dict] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    released: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, fault: str, times: int = 1) -> None:
        """Fail the next `times` requests: a status ("503"), "hang", "drop" or "cut" (stream cut after 1 chunk)."""
        with self.lock:
            self.faults.extend([fault] * times)

    def _next_fault(self, body: dict) -> str | None:
        with self.lock:
            self.requests.append(body)
            return self.faults.pop(0) if self.faults else None


@pytest.fixture
def fake_ollama() -> Iterator[FakeOllama]:
    """A fault-injecting Ollama on 127.0.0.1: `/api/chat` (JSON or NDJSON stream) and `/api/embed`, answering with
    the shapes recorded in tests/contracts/recordings/ollama/."""
    chat = json.loads((OLLAMA_RECORDINGS / "chat.json").read_text(encoding="utf-8"))
    chat_stream = json.loads((OLLAMA_RECORDINGS / "chat_stream.json").read_text(encoding="utf-8"))
    embed = json.loads((OLLAMA_RECORDINGS / "embed.json").read_text(encoding="utf-8"))
    fake = FakeOllama()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _send(self, status: int, body: bytes, content_type: str, length: int | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body) if length is None else length))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()

        def _json(self, status: int, payload: object) -> None:
            self._send(status, json.dumps(payload).encode(), "application/json")

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            fault = fake._next_fault(body)
            if fault == "hang":
                fake.released.wait(OLLAMA_HANG_SECONDS)
                self.close_connection = True
            elif fault == "drop":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
            elif fault is not None and fault.isdigit():
                self._json(int(fault), {"error": f"injected {fault}"})
            elif self.path == "/api/embed":
                texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
                self._json(200, {**embed, "model": body["model"], "embeddings": [fake_embedding(t) for t in texts]})
            elif self.path != "/api/chat":
                self._json(404, {"error": f"unexpected {self.path}"})
            elif body.get("stream"):
                data = "".join(json.dumps({**chunk, "model": body["model"]}) + "\n" for chunk in chat_stream).encode()
                if fault == "cut":  # the first chunk, then the connection closes before the promised length
                    self.close_connection = True
                    self._send(200, data.split(b"\n", 1)[0] + b"\n", "application/x-ndjson", length=len(data))
                else:
                    self._send(200, data, "application/x-ndjson")
            else:
                self._json(200, {**chat, "model": body["model"]})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake.released.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=1)
