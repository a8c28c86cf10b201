"""Fault-injecting fake HTTP servers on 127.0.0.1, all with one API.

Every fake records the requests it receives (`requests`: the JSON bodies, `paths`: the request paths, `headers`: their
headers, in order) and injects faults from one plan:

- `fail_next(fault, times=1)` queues one-shot faults, used by the next requests in order;
- `mode` is the standing fault of every request when the queue is empty (`"ok"`: answer normally);
- `reset()` clears the queue, the records and sets `mode` back to `"ok"`.

A fault is an HTTP status as a string (`"429"`, `"503"`: an error answer in the upstream's own error shape),
`"hang"` (no answer until `hang_seconds` pass or the fake stops), `"drop"` (the connection is closed before any
answer) or `"cut"` (a streamed answer closes after its first chunk, short of its promised length).

`FakeOllama` answers `/api/chat` (JSON or NDJSON stream) and `/api/embed` with the shapes recorded in
tests/contracts/recordings/ollama/; `FakeOpenAI` answers `/v1/chat/completions` (JSON or SSE stream).
Use them as context managers (`with FakeOllama() as fake: ...`) or through the plugin's fixtures.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from app.settings import PROJECT_ROOT

OLLAMA_RECORDINGS = PROJECT_ROOT / "tests" / "contracts" / "recordings" / "ollama"
FAULTS = ("ok", "hang", "drop", "cut")  # and any HTTP status as a string of digits


@dataclass
class Reply:
    """A normal answer: its status, content type and body in chunks (a stream is several chunks)."""

    status: int
    content_type: str
    chunks: list[bytes]
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: object, headers: dict[str, str] | None = None) -> Reply:
        return cls(status, "application/json", [json.dumps(payload).encode()], headers or {})


def check_fault(fault: str) -> str:
    """`fault` if it is a known fault, else ValueError."""
    if fault not in FAULTS and not fault.isdigit():
        raise ValueError(f"a fault is an HTTP status or one of {FAULTS}, got {fault!r}")
    return fault


class FakeServer:
    """A threaded HTTP server on a free 127.0.0.1 port answering POSTs through `reply()`, with injected faults."""

    hang_seconds: float = 10.0
    protocol_version = "HTTP/1.0"  # HTTP/1.0: the connection closes after each answer

    def __init__(self) -> None:
        self.mode = "ok"
        self.requests: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.headers: list[dict[str, str]] = []
        self.faults: list[str] = []
        self.released = threading.Event()
        self.lock = threading.Lock()
        self.url = ""
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- the fault plan -----------------------------------------------------------------------------------------

    def fail_next(self, fault: str, times: int = 1) -> None:
        """Fail the next `times` requests with `fault` (after those already queued)."""
        check_fault(fault)
        with self.lock:
            self.faults.extend([fault] * times)

    def reset(self) -> None:
        """No queued faults, no standing fault, no recorded requests."""
        with self.lock:
            self.mode = "ok"
            self.faults.clear()
            self.requests = []
            self.paths = []
            self.headers = []

    def _take(self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> str:
        with self.lock:
            self.requests.append(body)
            self.paths.append(path)
            self.headers.append(headers or {})
            return self.faults.pop(0) if self.faults else check_fault(self.mode)

    # -- what the subclasses define -----------------------------------------------------------------------------

    def reply(self, path: str, body: dict[str, Any]) -> Reply:
        """The normal answer to a POST of `body` to `path`."""
        raise NotImplementedError

    def error_reply(self, status: int) -> Reply:
        """The answer for an injected HTTP status, in the upstream's error shape."""
        return Reply.json(status, {"error": f"injected {status}"})

    # -- lifecycle ----------------------------------------------------------------------------------------------

    def start(self, port: int = 0) -> None:
        """Serve on `port` (0: a free one); `url` is then `http://127.0.0.1:<port>`."""
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Release hung requests and stop serving."""
        self.released.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=1)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


def _handler(fake: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = fake.protocol_version

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _send(self, reply: Reply, *, cut: bool = False) -> None:
            data = b"".join(reply.chunks)
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(reply.chunks[0] if cut else data)
            self.wfile.flush()
            if cut:  # the first chunk, then the connection closes before the promised length
                self.close_connection = True

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = json.loads(raw or b"{}")
            fault = fake._take(self.path, body, {k.lower(): v for k, v in self.headers.items()})
            if fault == "hang":
                fake.released.wait(fake.hang_seconds)
                self.close_connection = True
            elif fault == "drop":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
            elif fault.isdigit():
                self._send(fake.error_reply(int(fault)))
            else:
                self._send(fake.reply(self.path, body), cut=fault == "cut")

    return Handler


# -- Ollama ---------------------------------------------------------------------------------------------------------


def fake_embedding(text: str) -> list[float]:
    """The fake Ollama's default deterministic embedding: the text's length and its number of words."""
    return [float(len(text)), float(len(text.split())), 1.0]


def _recording(name: str) -> Any:
    return json.loads((OLLAMA_RECORDINGS / name).read_text(encoding="utf-8"))


class FakeOllama(FakeServer):
    """Ollama's `/api/chat` (JSON, or NDJSON when `stream`) and `/api/embed`, in the recorded shapes."""

    hang_seconds = 5.0  # longer than the tests' client timeout; `stop()` releases hung handlers

    def __init__(self, embed: Callable[[str], list[float]] = fake_embedding, recordings: Path = OLLAMA_RECORDINGS):
        super().__init__()
        self.embed = embed
        self.chat = json.loads((recordings / "chat.json").read_text(encoding="utf-8"))
        self.chat_stream = json.loads((recordings / "chat_stream.json").read_text(encoding="utf-8"))
        self.embed_shape = json.loads((recordings / "embed.json").read_text(encoding="utf-8"))

    def bodies(self, path: str) -> list[dict[str, Any]]:
        """The bodies of the requests to `path`, in order."""
        with self.lock:
            return [body for seen, body in zip(self.paths, self.requests, strict=True) if seen == path]

    def reply(self, path: str, body: dict[str, Any]) -> Reply:
        if path == "/api/embed":
            texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
            embeddings = [self.embed(text) for text in texts]
            return Reply.json(200, {**self.embed_shape, "model": body["model"], "embeddings": embeddings})
        if path != "/api/chat":
            return Reply.json(404, {"error": f"unexpected {path}"})
        if body.get("stream"):
            lines = [(json.dumps({**chunk, "model": body["model"]}) + "\n").encode() for chunk in self.chat_stream]
            return Reply(200, "application/x-ndjson", lines)
        return Reply.json(200, {**self.chat, "model": body["model"]})


# -- OpenAI ---------------------------------------------------------------------------------------------------------

COMPLETION = {
    "id": "chatcmpl-fault",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "gpt-4o-mini",
    "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Recovered [1]."}}],
    "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13},
}


class FakeOpenAI(FakeServer):
    """An OpenAI-compatible `/v1/chat/completions` answering "Recovered [1]." (JSON, or SSE when `stream`)."""

    protocol_version = "HTTP/1.1"

    @property
    def base_url(self) -> str:
        """The URL to give an OpenAI client (`.../v1`)."""
        return f"{self.url}/v1"

    def error_reply(self, status: int) -> Reply:
        # retry-after-ms keeps the OpenAI client's backoff between retries short
        payload = {"error": {"message": f"injected {status}", "type": "fault"}}
        return Reply.json(status, payload, headers={"retry-after-ms": "10"})

    def reply(self, path: str, body: dict[str, Any]) -> Reply:
        if not body.get("stream"):
            return Reply.json(200, COMPLETION)
        chunks = []
        for text in ("Recovered ", "[1]."):
            chunk = {
                **COMPLETION,
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
            }
            chunks.append(f"data: {json.dumps(chunk)}\n\n".encode())
        chunks.append(b"data: [DONE]\n\n")
        return Reply(200, "text/event-stream", chunks)
