"""Test support of the sync runs: an ingest that follows the versioned-document contract without a pipeline, and the
sync services on a test's state database.

`FakeSyncIngest` behaves as `IngestService.ingest_bytes(..., source_id=..., access=...)` / `remove_source` are
specified for issue 17: a new `source_id` is `indexed`, new content for it `updated` (its version moves on), the same
content as its current version `unchanged`, bytes that are another source's current version `duplicate`. It records
every call, and may be told to raise after a number of ingests (a worker dying mid-run).
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from app.errors import UpstreamUnavailableError
from app.jobs import JobService
from app.services.ingest import IngestResult
from app.services.naming import document_id_for
from app.settings import Settings
from app.sync.runner import IngestOutcome, SyncRunner
from app.sync.service import SourceService


class WorkerDied(Exception):
    """Raised by `FakeSyncIngest` once its `die_after` ingests are done."""


@dataclass
class FakeDocument:
    source_id: str
    document_id: str
    content_hash: str
    version: int
    access: list[str] | None


@dataclass
class FakeSyncIngest:
    """The ingest of one collection, per the contract; `calls` lists ("ingest" | "remove", source_id)."""

    collection: str = "c"
    documents: dict[str, FakeDocument] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    die_after: int | None = None  # raise WorkerDied on the ingest after this many
    fail: set[str] = field(default_factory=set)  # source ids whose ingest answers `failed`
    down: bool = False  # every call raises UpstreamUnavailableError (the store is down)

    def ingest(
        self, data: bytes, name: str, *, source_id: str, access: list[str] | None, content_type: str | None
    ) -> IngestOutcome:
        if self.down:
            raise UpstreamUnavailableError("the document store is down")
        if self.die_after is not None and sum(c[0] == "ingest" for c in self.calls) >= self.die_after:
            raise WorkerDied(source_id)
        self.calls.append(("ingest", source_id))
        if source_id in self.fail:
            return IngestOutcome(status="failed", error="cannot parse", error_code="extraction_failed")
        content_hash = hashlib.sha256(data).hexdigest()
        current = self.documents.get(source_id)
        if current is not None and current.content_hash == content_hash:
            return IngestOutcome(status="unchanged", document_id=current.document_id, version=current.version)
        twin = next((d for d in self.documents.values() if d.content_hash == content_hash), None)
        if twin is not None:
            return IngestOutcome(status="duplicate", document_id=twin.document_id, version=twin.version)
        if current is None:
            document = FakeDocument(source_id, document_id_for(self.collection, content_hash), content_hash, 1, access)
            self.documents[source_id] = document
            return IngestOutcome(status="indexed", document_id=document.document_id, version=1)
        current.content_hash, current.version, current.access = content_hash, current.version + 1, access
        return IngestOutcome(status="updated", document_id=current.document_id, version=current.version)

    def remove(self, source_id: str) -> int:
        if self.down:
            raise UpstreamUnavailableError("the document store is down")
        self.calls.append(("remove", source_id))
        return 2 if self.documents.pop(source_id, None) is not None else 0

    def ingested(self) -> list[str]:
        return [source_id for kind, source_id in self.calls if kind == "ingest"]

    def removed(self) -> list[str]:
        return [source_id for kind, source_id in self.calls if kind == "remove"]


class FakeIngestService:
    """`IngestService`'s versioned surface (`ingest_bytes` with `source_id`/`access`, `remove_source`) over
    `FakeSyncIngest`s, one per collection: what `ingest_adapter` calls."""

    def __init__(self) -> None:
        self.collections: dict[str, FakeSyncIngest] = {}

    def of(self, collection: str) -> FakeSyncIngest:
        return self.collections.setdefault(collection, FakeSyncIngest(collection))

    def ingest_bytes(self, data: bytes, filename: str, *, collection: str, **kwargs: Any) -> IngestResult:
        outcome = self.of(collection).ingest(
            data,
            filename,
            source_id=kwargs["source_id"],
            access=kwargs.get("access"),
            content_type=kwargs.get("content_type"),
        )
        return IngestResult(
            document_id=outcome.document_id or "",
            filename=filename,
            content_type=kwargs.get("content_type"),
            status=outcome.status,  # type: ignore[arg-type]  # the versioned statuses (issue 17)
            error=outcome.error,
            error_code=outcome.error_code,
        )

    def remove_source(self, collection: str, source_id: str) -> int:
        return self.of(collection).remove(source_id)


@dataclass
class SyncRig:
    """A test's sync services, built by the composition root from `settings`: the source service, its job service, and
    the runner of the job worker, ingesting through `ingest` (the versioned-document contract) by `ingest_adapter`."""

    settings: Settings
    sources: SourceService
    jobs: JobService
    runner: SyncRunner
    ingest: FakeIngestService

    def of(self, collection: str) -> FakeSyncIngest:
        return self.ingest.of(collection)


def sync_rig(settings: Settings) -> SyncRig:
    """Sync services on the settings' state (RAG_DATA_DIR files, or RAG_STATE_URL) with a `FakeIngestService`."""
    from app import composition

    jobs = composition.job_service(settings)
    ingest = FakeIngestService()
    runner = composition.sync_runner(settings, ingest, jobs.store)  # type: ignore[arg-type]  # the contract's fake
    return SyncRig(
        settings=settings,
        sources=composition.source_service(settings, jobs),
        jobs=jobs,
        runner=runner,
        ingest=ingest,
    )


class PageServer:
    """A local web server for URL sources: `pages` maps a path to its body (ETag = a hash of it; 304 on a matching
    If-None-Match); `redirects` maps a path to a Location; `hits` lists (method, path, status) as answered."""

    def __init__(self) -> None:
        self.pages: dict[str, bytes] = {}
        self.redirects: dict[str, str] = {}
        self.hits: list[tuple[str, str, int]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> PageServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        pages = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._answer()

            def send_response(self, code: int, message: str | None = None) -> None:
                pages.hits.append(("GET", self.path, code))  # before the answer leaves: a test reads it right after
                super().send_response(code, message)

            def _answer(self) -> int:
                if self.path in pages.redirects:
                    self.send_response(302)
                    self.send_header("Location", pages.redirects[self.path])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return 302
                body = pages.pages.get(self.path)
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return 404
                etag = f'"{hashlib.sha256(body).hexdigest()[:16]}"'
                if self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.end_headers()
                    return 304
                self.send_response(200)
                self.send_header("ETag", etag)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return 200

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler


def text_pdf(pages: list[str], *, line_chars: int = 90) -> bytes:
    """A plain PDF with one page per string (Helvetica, wrapped at `line_chars`): text any PDF converter extracts, for
    tests that edit one page of a long document."""

    def escape(text: str) -> str:
        return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    objects: list[bytes] = []
    count = len(pages)
    kids = " ".join(f"{4 + 2 * n} 0 R" for n in range(count))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {count} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    for n, text in enumerate(pages):
        words, lines, line = text.split(), [], ""
        for word in words:
            if line and len(line) + 1 + len(word) > line_chars:
                lines.append(line)
                line = word
            else:
                line = f"{line} {word}".strip()
        lines.append(line)
        body = "BT /F1 10 Tf 14 TL 50 750 Td " + " ".join(f"({escape(x)}) '" for x in lines) + " ET"
        stream = body.encode("latin-1")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
            f"/Contents {5 + 2 * n} 0 R >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body_bytes in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body_bytes + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)
