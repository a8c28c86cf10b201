"""Load and soak: concurrent clients mixing uploads and queries against a real `rag serve` for a fixed duration.

Usage: .venv/bin/python bench/soak.py [--duration 120] [--clients 8] [--upload-share 0.2] [--stream-share 0.02]
       [--generate] [--workers 1] [--profile NAME | --pipelines-dir DIR] [--url URL [--server-pid PID]]
       [--api-key KEY] [--json FILE]
Without --url it starts `rag serve` on a free 127.0.0.1 port with a fresh temporary data dir, auth on as in
production (a writer key is created with `rag keys create` and sent on every request) and the rate limit off.
Every client loops until the time is up, picking per request:
  - an upload (--upload-share of requests): one small generated TXT / MD / CSV / HTML file, or now and then
    (--pdf-share of uploads) a one-page generated PDF; every file has distinct content, so nothing dedupes;
  - a query: POST /query ("generate": false unless --generate), or (--stream-share of queries, at most
    --max-streams at once) POST /query/stream read to the end (streams always run the LLM).
All requests go to one fresh collection (`soak-<random>`; --collection to choose). Reported: requests/s overall and
per kind (requests finished within --duration; in-flight ones then get --drain seconds), p50/p95/p99 latency per kind
(answered requests), errors by status (any non-2xx, a transport error or an SSE `error` event; 5xx counted apart),
server RSS (VmRSS of the server process and its children) at the start, every --rss-every seconds and at the end,
chunks indexed, and a final check that every uploaded document is listed exactly once by GET /documents (paged).
With --url the RSS needs --server-pid (otherwise it is skipped). --api-key (or env RAG_API_KEY) is sent as
`Authorization: Bearer <key>` on every request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from app.testing.servers import (
    ServerNotReady,
    ServerProcess,
    log_tail,
    rag_command,
    rag_environment,
    rag_server,
    rss_mib,
    tree_rss_mib,
)
from bench._common import percentile

KINDS = ("upload", "query", "stream")
TOPICS = [
    "vectors", "matrices", "data frames", "factors", "regression", "histograms", "loops", "functions", "packages",
    "missing values", "sorting", "sampling", "time series", "string handling", "file input", "plots", "lists",
    "environments", "debugging", "profiling", "databases", "caching", "indexes", "replication", "backups",
    "compression", "encryption", "scheduling", "logging", "queues",
]  # fmt: skip
VERBS = ["describes", "explains", "compares", "limits", "improves", "measures", "configures", "documents"]
QUALITIES = ["fast", "careful", "simple", "robust", "incremental", "parallel", "lazy", "strict"]


# ---------------------------------------------------------------------------------------------------------- content


def _sentence(rng: random.Random, tag: str) -> str:
    a, b = rng.sample(TOPICS, 2)
    return (
        f"The {rng.choice(QUALITIES)} approach to {a} {rng.choice(VERBS)} how {b} behave in case {tag}-"
        f"{rng.randrange(10**6)}, with a threshold of {rng.randrange(1, 500)} and {rng.choice(QUALITIES)} defaults."
    )


def _paragraphs(rng: random.Random, tag: str, n: int) -> list[str]:
    return [" ".join(_sentence(rng, tag) for _ in range(rng.randint(3, 7))) for _ in range(n)]


def _pdf(title: str, lines: list[str]) -> bytes:
    """A valid one-page PDF (Helvetica text) built by hand: no PDF library needed."""

    def escape(text: str) -> str:
        return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    ops = ["BT", "/F1 16 Tf", "72 740 Td", "18 TL", f"({escape(title)}) Tj", "/F1 10 Tf", "T*"]
    ops += [f"({escape(line)}) Tj T*" for line in lines]
    ops.append("ET")
    stream = "\n".join(ops).encode("latin-1", "replace")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 4 0 R >> >> "
        b"/Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def make_file(rng: random.Random, serial: int, pdf_share: float) -> tuple[str, bytes, str]:
    """A small generated file with content no other call returns: (file name, bytes, content type)."""
    tag = f"{serial}-{uuid.uuid4().hex[:12]}"
    title = f"Soak note {tag} on {rng.choice(TOPICS)}"
    if rng.random() < pdf_share:
        words = " ".join(_paragraphs(rng, tag, 2)).split()
        lines = [" ".join(words[i : i + 14]) for i in range(0, len(words), 14)][:60]
        return f"soak-{tag}.pdf", _pdf(title, lines), "application/pdf"
    paragraphs = _paragraphs(rng, tag, rng.randint(2, 5))
    kind = rng.choice(("txt", "md", "csv", "html"))
    if kind == "txt":
        text = title + "\n\n" + "\n\n".join(paragraphs) + "\n"
        return f"soak-{tag}.txt", text.encode(), "text/plain"
    if kind == "md":
        sections = [f"## {rng.choice(TOPICS).title()}\n\n{p}" for p in paragraphs]
        return f"soak-{tag}.md", (f"# {title}\n\n" + "\n\n".join(sections) + "\n").encode(), "text/markdown"
    if kind == "csv":
        rows = ["id,topic,quality,value,note"]
        rows += [
            f'{tag}-{i},{rng.choice(TOPICS)},{rng.choice(QUALITIES)},{rng.randrange(1000)},"{_sentence(rng, tag)}"'
            for i in range(rng.randint(5, 25))
        ]
        return f"soak-{tag}.csv", ("\n".join(rows) + "\n").encode(), "text/csv"
    body = "".join(f"<h2>{rng.choice(TOPICS).title()}</h2><p>{p}</p>" for p in paragraphs)
    html = f"<!DOCTYPE html><html><head><title>{title}</title></head><body><h1>{title}</h1>{body}</body></html>\n"
    return f"soak-{tag}.html", html.encode(), "text/html"


def make_question(rng: random.Random) -> str:
    a, b = rng.sample(TOPICS, 2)
    return rng.choice(
        (
            f"How does the {rng.choice(QUALITIES)} approach to {a} work?",
            f"What is said about {a} and {b}?",
            f"Which threshold applies to {a}?",
            f"Explain {a} with {rng.choice(QUALITIES)} defaults.",
        )
    )


# ---------------------------------------------------------------------------------------------------------- server


def _server_env(args: argparse.Namespace) -> dict[str, str]:
    extra = {"RAG_RATE_LIMIT": "off", "HAYSTACK_TELEMETRY_ENABLED": "False"}
    if args.profile:
        extra["RAG_PROFILE"] = args.profile
    return extra


@contextmanager
def start_server(args: argparse.Namespace, data_dir: Path) -> Iterator[ServerProcess]:
    """`rag serve` on a free port with a fresh data dir, auth on, rate limit off; ready (/ready); stopped at exit.

    Sets `args.api_key` to a new writer key of that data dir."""
    pipelines_dir = Path(args.pipelines_dir).resolve() if args.pipelines_dir else None
    env = rag_environment(data_dir, pipelines_dir, _server_env(args), auth=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    args.api_key = rag_command("keys", "create", "--role", "writer", "--name", "soak", "--quiet", env=env)
    with rag_server(
        pipelines_dir, data_dir, env=env, auth=True, workers=args.workers, seconds=args.ready_timeout
    ) as server:
        yield server


# ---------------------------------------------------------------------------------------------------------- load


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    requests: Counter = field(default_factory=Counter)  # started
    in_window: Counter = field(default_factory=Counter)  # finished (answered or failed) before the deadline
    cancelled: Counter = field(default_factory=Counter)  # still running when the drain time ran out
    errors: Counter = field(default_factory=Counter)  # "<kind> <status>" -> count
    first_token_ms: list[float] = field(default_factory=list)
    uploaded: dict[str, int] = field(default_factory=dict)  # document_id -> chunks, from the upload answers
    upload_files: Counter = field(default_factory=Counter)  # per-file status (indexed, duplicate, failed)
    unanswered: set[str] = field(default_factory=set)  # file names of uploads that got no answer (may be indexed)
    file_types: Counter = field(default_factory=Counter)
    refused: int = 0
    streaming: int = 0  # /query/stream requests in flight
    rss: list[tuple[float, float]] = field(default_factory=list)  # (seconds since start, MiB)
    own_rss: list[tuple[float, float]] = field(default_factory=list)  # the API process alone (no workers)

    def error(self, kind: str, status: str) -> None:
        self.errors[f"{kind} {status}"] += 1


async def _upload(
    http: httpx.AsyncClient, stats: Stats, rng: random.Random, serial: int, args: argparse.Namespace
) -> None:
    name, data, content_type = make_file(rng, serial, args.pdf_share)
    stats.file_types[name.rsplit(".", 1)[1]] += 1
    stats.unanswered.add(name)
    t0 = time.perf_counter()
    response = await http.post(
        "/documents/upload", files={"files": (name, data, content_type)}, data={"collection": args.collection}
    )
    elapsed = (time.perf_counter() - t0) * 1000
    stats.unanswered.discard(name)
    if not response.is_success:
        stats.error("upload", str(response.status_code))
        return
    stats.latencies["upload"].append(elapsed)
    for result in response.json()["files"]:
        stats.upload_files[result["status"]] += 1
        if result["status"] == "indexed":
            stats.uploaded[result["document_id"]] = result["chunks"]


async def _query(http: httpx.AsyncClient, stats: Stats, rng: random.Random, args: argparse.Namespace) -> None:
    question = make_question(rng)
    body = {"question": question, "collection": args.collection, "generate": args.generate, "top_k": args.top_k}
    t0 = time.perf_counter()
    response = await http.post("/query", json=body, timeout=args.generate_timeout if args.generate else 60)
    elapsed = (time.perf_counter() - t0) * 1000
    if not response.is_success:
        stats.error("query", str(response.status_code))
        return
    stats.latencies["query"].append(elapsed)
    stats.refused += bool(response.json().get("refused"))


async def _stream(http: httpx.AsyncClient, stats: Stats, rng: random.Random, args: argparse.Namespace) -> None:
    body = {"question": make_question(rng), "collection": args.collection, "top_k": args.top_k}
    t0 = time.perf_counter()
    first: float | None = None
    event = None
    failed = done = False
    async with http.stream("POST", "/query/stream", json=body, timeout=args.generate_timeout) as response:
        if not response.is_success:
            await response.aread()
            stats.error("stream", str(response.status_code))
            return
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: "):
                if event == "token" and first is None:
                    first = (time.perf_counter() - t0) * 1000
                    stats.first_token_ms.append(first)
                elif event == "error":
                    failed = True
                elif event == "done":
                    done = True
                    stats.refused += bool(json.loads(line.removeprefix("data: ")).get("refused"))
    if failed or not done:
        stats.error("stream", "sse_error" if failed else "incomplete")
        return
    stats.latencies["stream"].append((time.perf_counter() - t0) * 1000)


async def _client(
    index: int, http: httpx.AsyncClient, stats: Stats, args: argparse.Namespace, deadline: float, serials
) -> None:
    rng = random.Random(f"{args.seed}-{index}")
    while time.monotonic() < deadline:
        if rng.random() < args.upload_share:
            kind = "upload"
        else:
            wants_stream = rng.random() < args.stream_share
            # at most --max-streams LLM answers at once: queued generations would starve everything else
            kind = "stream" if wants_stream and stats.streaming < args.max_streams else "query"
        stats.requests[kind] += 1
        try:
            if kind == "upload":
                await _upload(http, stats, rng, next(serials), args)
            elif kind == "query":
                await _query(http, stats, rng, args)
            else:
                stats.streaming += 1
                try:
                    await _stream(http, stats, rng, args)
                finally:
                    stats.streaming -= 1
        except httpx.TransportError as error:
            stats.error(kind, type(error).__name__)
        except asyncio.CancelledError:
            stats.cancelled[kind] += 1
            raise
        if time.monotonic() <= deadline:
            stats.in_window[kind] += 1


async def _sample_rss(pid: int, stats: Stats, started: float, every: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        rss, own = tree_rss_mib(pid), rss_mib(pid)
        if rss is not None and own is not None:
            stats.rss.append((round(time.monotonic() - started, 1), rss))
            stats.own_rss.append((round(time.monotonic() - started, 1), own))
            print(
                f"  t={time.monotonic() - started:6.1f} s  server RSS {rss:7.1f} MiB (API process {own:7.1f} MiB)",
                flush=True,
            )
        try:
            await asyncio.wait_for(stop.wait(), timeout=every)
        except TimeoutError:
            pass


async def run_load(base: str, args: argparse.Namespace, pid: int | None) -> tuple[Stats, float]:
    """Run the clients for --duration; requests in flight then get --drain seconds to finish, then are cancelled.
    Returns the stats and the drain time."""
    stats = Stats()
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    serials = iter(range(10**9))
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=120, limits=limits) as http:
        started = time.monotonic()
        stop = asyncio.Event()
        sampler = asyncio.create_task(_sample_rss(pid, stats, started, args.rss_every, stop)) if pid else None
        deadline = started + args.duration
        clients = [asyncio.create_task(_client(i, http, stats, args, deadline, serials)) for i in range(args.clients)]
        _, pending = await asyncio.wait(clients, timeout=args.duration + args.drain)
        for task in pending:
            task.cancel()
        await asyncio.gather(*clients, return_exceptions=True)
        elapsed = time.monotonic() - started
        for task in clients:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # a bug in this script, not a server error
        stop.set()
        if sampler is not None:
            await sampler
            rss = tree_rss_mib(pid)
            if rss is not None:
                stats.rss.append((round(elapsed, 1), rss))
                print(f"  t={elapsed:6.1f} s  server RSS {rss:7.1f} MiB (end)", flush=True)
    return stats, max(0.0, elapsed - args.duration)


# ---------------------------------------------------------------------------------------------------------- checks


def verify_documents(base: str, args: argparse.Namespace, stats: Stats) -> dict[str, Any]:
    """Page through GET /documents: every indexed upload listed exactly once, nothing else, chunk counts equal."""
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    seen: Counter = Counter()
    chunks: dict[str, int] = {}
    names: dict[str, str] = {}
    total = None
    offset = 0
    with httpx.Client(base_url=base, headers=headers, timeout=300) as http:
        while total is None or offset < total:
            response = http.get("/documents", params={"collection": args.collection, "offset": offset, "limit": 500})
            response.raise_for_status()
            page = response.json()
            total = page["total"]
            if not page["documents"]:
                break
            for doc in page["documents"]:
                seen[doc["document_id"]] += 1
                chunks[doc["document_id"]] = doc["chunks"]
                names[doc["document_id"]] = doc["filename"]
            offset += len(page["documents"])
    expected = set(stats.uploaded)
    listed = set(seen)
    extra = listed - expected
    # an upload cut off by a transport error or the end of the drain may still have been indexed: not a mismatch
    unanswered = {d for d in extra if names[d] in stats.unanswered}
    return {
        "expected": len(expected),
        "listed": sum(seen.values()),
        "total_reported": total,
        "unanswered_but_listed": len(unanswered),
        "missing": sorted(expected - listed),
        "unexpected": sorted(extra - unanswered),
        "listed_more_than_once": sorted(d for d, n in seen.items() if n > 1),
        "chunk_mismatches": sorted(d for d in expected & listed if chunks[d] != stats.uploaded[d]),
        "chunks_listed": sum(chunks.values()),
    }


def _mib(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.0f} MiB"


def _median_between(samples: list[tuple[float, float]], start: float, end: float) -> float | None:
    values = sorted(v for t, v in samples if start <= t < end)
    return values[len(values) // 2] if values else None


def _rss_figures(stats: Stats, duration: float, warmup: float) -> dict[str, Any]:
    if not stats.rss:
        return {}
    start, end = stats.rss[0][1], stats.rss[-1][1]
    # memory a warm server keeps gaining is the leak signal: growth from the middle of the window to the end
    middle = next(v for t, v in stats.rss if t >= duration / 2 or (t, v) == stats.rss[-1])
    # after warm-up: the median of the last minute against the median of the minute after warm-up (a median, so a
    # sample taken while a replacement indexing worker warms up beside the old one does not decide the figure)
    warm = _median_between(stats.rss, warmup, warmup + 60)
    last = _median_between(stats.rss, duration - 60, duration + 1)
    own_warm = _median_between(stats.own_rss, warmup, warmup + 60)
    own_last = _median_between(stats.own_rss, duration - 60, duration + 1)
    return {
        "start_mib": round(start, 1),
        "end_mib": round(end, 1),
        "peak_mib": round(max(v for _, v in stats.rss), 1),
        "growth_mib": round(end - start, 1),
        "second_half_growth_mib": round(end - middle, 1),
        "after_warmup_growth_mib": round(last - warm, 1) if warm is not None and last is not None else None,
        "api_process_after_warmup_growth_mib": (
            round(own_last - own_warm, 1) if own_warm is not None and own_last is not None else None
        ),
        "samples": stats.rss,
        "api_process_samples": stats.own_rss,
    }


def report(args: argparse.Namespace, stats: Stats, drain: float, check: dict[str, Any]) -> dict[str, Any]:
    """Print the figures; rates count the requests finished within --duration, latencies every answered request."""
    window = args.duration
    total = sum(stats.requests.values())
    finished = sum(stats.in_window.values())
    errors_total = sum(stats.errors.values())
    server_errors = sum(n for key, n in stats.errors.items() if key.split()[1].startswith("5"))
    print(
        f"\n{args.clients} clients, {window:.0f} s (+{drain:.1f} s drain), upload share {args.upload_share}, "
        f"stream share {args.stream_share}, generate {args.generate}, collection {args.collection}"
    )
    print(
        f"overall          {finished / window:.2f} req/s ({finished} finished in the window, {total} started, "
        f"{sum(stats.cancelled.values())} cancelled after the drain), {errors_total} errors, {server_errors} 5xx"
    )
    per_kind: dict[str, Any] = {}
    for kind in KINDS:
        answered = stats.latencies[kind]
        figures: dict[str, Any] = {
            "started": stats.requests[kind],
            "finished_in_window": stats.in_window[kind],
            "rps": round(stats.in_window[kind] / window, 2),
            "answered": len(answered),
        }
        line = f"{kind:<16} {figures['rps']:6.2f} req/s ({stats.requests[kind]} started, {len(answered)} answered)"
        if answered:
            figures.update({f"p{q}_ms": round(percentile(answered, q), 1) for q in (50, 95, 99)})
            line += f", p50 {figures['p50_ms']:.0f} ms, p95 {figures['p95_ms']:.0f} ms, p99 {figures['p99_ms']:.0f} ms"
        per_kind[kind] = figures
        print(line)
    if stats.first_token_ms:
        first = per_kind["stream"]["first_token_p50_ms"] = round(percentile(stats.first_token_ms, 50), 1)
        print(f"stream 1st token p50 {first:.0f} ms ({len(stats.first_token_ms)} streams)")
    print(f"errors           {dict(sorted(stats.errors.items())) or 'none'}")
    print(f"upload files     {dict(stats.upload_files)}, types {dict(sorted(stats.file_types.items()))}")
    chunks = sum(stats.uploaded.values())
    print(f"chunks indexed   {chunks} in {len(stats.uploaded)} documents")
    if args.generate or stats.requests["stream"]:
        print(f"refused answers  {stats.refused}")
    rss = _rss_figures(stats, window, args.warmup)
    if rss:
        print(
            f"server RSS       start {rss['start_mib']:.0f} MiB, end {rss['end_mib']:.0f} MiB, peak "
            f"{rss['peak_mib']:.0f} MiB, growth {rss['growth_mib']:+.0f} MiB "
            f"({rss['second_half_growth_mib']:+.0f} MiB over the second half; after a {args.warmup:.0f} s warm-up "
            f"{_mib(rss['after_warmup_growth_mib'])}, API process alone "
            f"{_mib(rss['api_process_after_warmup_growth_mib'])}: medians of the last minute and of the minute "
            "after warm-up)"
        )
    problems = {k: check[k] for k in ("missing", "unexpected", "listed_more_than_once", "chunk_mismatches") if check[k]}
    duplicates = stats.upload_files.get("duplicate", 0)
    consistent = check["total_reported"] == check["expected"] + check["unanswered_but_listed"]
    status = "OK" if not problems and not duplicates and consistent else "MISMATCH"
    print(
        f"documents check  {status}: {check['expected']} indexed uploads, {check['listed']} listed "
        f"(total {check['total_reported']}), {check['chunks_listed']} chunks listed"
    )
    if check["unanswered_but_listed"]:
        print(
            f"  uploads without an answer (transport error or cancelled) yet listed: {check['unanswered_but_listed']}"
        )
    for key, ids in problems.items():
        print(f"  {key}: {len(ids)} {ids[:10]}")
    if duplicates:
        print(f"  uploads answered duplicate (content is distinct, so none expected): {duplicates}")
    return {
        "clients": args.clients,
        "duration_s": window,
        "drain_s": round(drain, 1),
        "upload_share": args.upload_share,
        "stream_share": args.stream_share,
        "generate": args.generate,
        "collection": args.collection,
        "requests_started": total,
        "requests_finished_in_window": finished,
        "rps": round(finished / window, 2),
        "kinds": per_kind,
        "cancelled": dict(stats.cancelled),
        "errors": dict(stats.errors),
        "errors_total": errors_total,
        "errors_5xx": server_errors,
        "upload_files": dict(stats.upload_files),
        "file_types": dict(stats.file_types),
        "chunks_indexed": chunks,
        "documents_indexed": len(stats.uploaded),
        "refused": stats.refused,
        "rss": rss,
        "documents_check": {"status": status, **check},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=120, help="seconds of load (default 120)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--upload-share", type=float, default=0.2, help="fraction of requests that upload")
    parser.add_argument("--stream-share", type=float, default=0.02, help="fraction of queries sent to /query/stream")
    parser.add_argument("--max-streams", type=int, default=1, help="streams in flight at once (others: /query)")
    parser.add_argument("--pdf-share", type=float, default=0.1, help="fraction of uploads that are PDFs")
    parser.add_argument("--generate", action="store_true", help='POST /query with "generate": true (real LLM)')
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--generate-timeout", type=float, default=600, help="timeout of LLM requests, seconds")
    parser.add_argument("--collection", default=f"soak-{uuid.uuid4().hex[:8]}")
    parser.add_argument("--url", help="an already running server instead of starting one")
    parser.add_argument("--server-pid", type=int, help="with --url: the server's pid, for RSS figures")
    parser.add_argument("--api-key", default=os.environ.get("RAG_API_KEY"), help="Bearer key (env RAG_API_KEY)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes of the started server")
    parser.add_argument("--profile", help="RAG_PROFILE of the started server (e.g. pgvector)")
    parser.add_argument("--pipelines-dir", help="RAG_PIPELINES_DIR of the started server")
    parser.add_argument("--ready-timeout", type=float, default=300, help="seconds to wait for /ready")
    parser.add_argument("--drain", type=float, default=60, help="seconds in-flight requests get after the window")
    parser.add_argument("--rss-every", type=float, default=10, help="RSS sampling period, seconds")
    parser.add_argument("--warmup", type=float, default=60, help="seconds of warm-up before growth is counted")
    parser.add_argument("--seed", default="soak", help="random seed of the request mix")
    parser.add_argument("--keep-data", action="store_true", help="keep the started server's data dir and log")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()

    server = None
    data_dir = None
    pid = args.server_pid
    with ExitStack() as stack:
        if args.url:
            base = args.url.rstrip("/")
        else:
            data_dir = Path(tempfile.mkdtemp(prefix="rag-soak-"))
            print(f"starting rag serve (data dir {data_dir}, {args.workers} worker(s)) ...", flush=True)
            try:
                server = stack.enter_context(start_server(args, data_dir))
            except ServerNotReady as error:
                raise SystemExit(str(error)) from None
            base, pid = server.url, server.pid
        print(f"soak: {args.clients} clients for {args.duration:.0f} s against {base}", flush=True)
        stats, drain = asyncio.run(run_load(base, args, pid))
        if server is not None and server.proc.poll() is not None:
            raise SystemExit(f"rag serve exited during the run ({server.proc.returncode}):\n{log_tail(server.log)}")
        check = verify_documents(base, args, stats)
    if data_dir is not None and not args.keep_data:
        shutil.rmtree(data_dir, ignore_errors=True)
    figures = report(args, stats, drain, check)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"figures written to {args.json}")


if __name__ == "__main__":
    main()
