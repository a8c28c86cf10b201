"""Retrieval at 100k chunks: hybrid retrieval through the query pipeline, then retrieval-only `/query` under load.

Usage: .venv/bin/python bench/retrieval.py [--chunks 100000] [--queries 300] [--clients 32] [--requests 2000]
       [--keep DIR] [--skip-api]
1. Loads `--chunks` chunks into one LanceDB table of the default profile (four collections) and builds its indices.
   Chunk text is real: 1,000-character windows of the R reference manual (Debian r-doc-pdf), so full-text search
   sees a real vocabulary. Chunk vectors are NOT real embeddings: random unit vectors from a seeded generator
   (embedding 100k chunks at ~50/s would take over half an hour); the query vectors are real (the pipeline's own
   embedder), so every stage does its real work and the figures are latencies, not retrieval quality.
   `--keep DIR` keeps the table in DIR and reuses it on the next run (the same seed gives the same table).
2. `QueryService.ask(generate=False)` (embed, keyword + vector search, RRF, gate; no LLM) for `--queries` questions of
   four words drawn from the corpus, one at a time, in three settings: the shipped YAML (`concurrency_limit: 2`,
   `immutable_embedding: true`), the same run one component at a time, and one at a time with the query embedding
   as a plain list (deep-copied by Haystack, the behaviour before). p50 / p99 and each stage's p50. Target:
   p50 <= 20 ms in the shipped setting.
3. A real `rag serve` (uvicorn, one worker, auth on, rate limit off) on that table: `--clients` concurrent clients
   POST `/query` with `"generate": false` (`--requests` in all) -> req/s, p50, p99. Target: >= 100 req/s, p99 <= 150 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")

from bench._common import peak_rss_mb, percentile, temp_profile
from bench.query import corpus_text, fill

COLLECTION = "c1"


def _questions(text: str, n: int, rng: np.random.Generator) -> list[str]:
    words = [w for w in text.split() if w.isalpha() and len(w) > 3]
    return [" ".join(rng.choice(words, size=4)) for _ in range(n)]


def build(services: Any, chunks: int, text: str, done_marker: Path) -> float:
    """Fill the store (unless `done_marker` says a previous run did) and build its indices; seconds taken."""
    store = services.pipelines.document_store
    started = time.perf_counter()
    if not done_marker.exists():
        fill(store, chunks, np.random.default_rng(7), text)
        store.create_indices()
        done_marker.write_text(str(chunks))
    return time.perf_counter() - started


def pipeline_latency(services: Any, questions: list[str], *, concurrency: int, immutable: bool) -> dict[str, Any]:
    """Run every question through `QueryService.ask(generate=False)`; latencies and stage p50s in ms."""
    spec = services.pipelines.query
    spec.concurrency_limit = concurrency
    spec.pipeline.get_component("text_embedder").immutable_embedding = immutable
    service = services.query
    for question in questions[:5]:  # warm-up: model, index caches, this thread's event loop
        service.ask(question, collection=COLLECTION, top_k=5, generate=False)
    latencies: list[float] = []
    stages: dict[str, list[float]] = {}
    for question in questions:
        t0 = time.perf_counter()
        result = service.ask(question, collection=COLLECTION, top_k=5, generate=False)
        latencies.append((time.perf_counter() - t0) * 1000)
        assert len(result.sources) == 5, len(result.sources)
        for name, ms in result.components_ms.items():
            stages.setdefault(name, []).append(ms)
    return {
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "stages": {name: percentile(values, 50) for name, values in stages.items()},
    }


async def _load(base: str, clients: int, total: int, questions: list[str], headers: dict[str, str]) -> tuple:
    import httpx

    latencies: list[float] = []
    errors = 0
    counter = iter(range(total))

    async def worker(http: httpx.AsyncClient) -> None:
        nonlocal errors
        for i in counter:
            body = {"question": questions[i % len(questions)], "collection": COLLECTION, "generate": False, "top_k": 5}
            t0 = time.perf_counter()
            response = await http.post("/query", json=body)
            latencies.append((time.perf_counter() - t0) * 1000)
            errors += response.status_code != 200

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits, headers=headers) as http:
        for question in questions[:10]:  # warm-up
            await http.post("/query", json={"question": question, "collection": COLLECTION, "generate": False})
        started = time.perf_counter()
        await asyncio.gather(*(worker(http) for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return total / elapsed, latencies, errors


def api_load(
    profile: Path, data_dir: Path, clients: int, requests: int, questions: list[str], *, concurrency: int, workers: int
) -> str:
    from app.testing.profiles import edit_yaml
    from app.testing.servers import rag_command, rag_environment, rag_server

    edit_yaml(profile / "query.yml", lambda data: data.update(concurrency_limit=concurrency))
    env = rag_environment(data_dir, auth=True, env={"HAYSTACK_TELEMETRY_ENABLED": "False", "RAG_RATE_LIMIT": "off"})
    key = rag_command("keys", "create", "--role", "reader", "--collections", COLLECTION, "--quiet", env=env)
    headers = {"Authorization": f"Bearer {key}"}
    with rag_server(None, data_dir, env=env, auth=True, workers=workers, seconds=180) as server:
        rps, latencies, errors = asyncio.run(_load(server.url, clients, requests, questions, headers))
    return (
        f"/query retrieval-only [concurrency_limit {concurrency}, {workers} worker(s)], {clients} clients, "
        f"{requests} requests: {rps:.0f} req/s, p50 {percentile(latencies, 50):.0f} ms, "
        f"p99 {percentile(latencies, 99):.0f} ms, errors {errors}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--keep", type=Path, help="keep the table in this directory and reuse it next time")
    parser.add_argument("--skip-api", action="store_true", help="pipeline figures only")
    parser.add_argument("--skip-pipeline", action="store_true", help="API figures only")
    parser.add_argument("--api-concurrency", type=int, nargs="+", default=[2, 1], help="concurrency_limit settings")
    parser.add_argument("--workers", type=int, nargs="+", default=[1], help="uvicorn worker counts")
    args = parser.parse_args()

    profile, data_dir = temp_profile()
    if args.keep:
        shutil.rmtree(data_dir, ignore_errors=True)
        data_dir = args.keep.resolve() / str(args.chunks)
        data_dir.mkdir(parents=True, exist_ok=True)
        os.environ["RAG_DATA_DIR"] = str(data_dir)
    from app.composition import build_services
    from app.settings import Settings

    text = corpus_text()
    services = build_services(Settings())
    load_s = build(services, args.chunks, text, data_dir / "bench-loaded")
    questions = _questions(text, args.queries, np.random.default_rng(11))
    print(f"{args.chunks} chunks in 4 collections, load + index build {load_s:.1f} s (0: reused)")
    settings = [
        ("shipped: concurrency_limit 2, immutable_embedding", 2, True),
        ("one component at a time, immutable_embedding", 1, True),
        ("one component at a time, embedding as a list (before)", 1, False),
    ]
    for label, concurrency, immutable in [] if args.skip_pipeline else settings:
        figures = pipeline_latency(services, questions, concurrency=concurrency, immutable=immutable)
        stages = ", ".join(f"{name} {ms:.1f}" for name, ms in figures["stages"].items())
        print(
            f"pipeline hybrid retrieval [{label}]: p50 {figures['p50']:.1f} ms, p99 {figures['p99']:.1f} ms "
            f"(stage p50s, ms: {stages})"
        )
    print(f"peak RSS {peak_rss_mb():.0f} MiB")
    if not args.skip_api:
        for workers in args.workers:
            for concurrency in args.api_concurrency:
                line = api_load(
                    profile, data_dir, args.clients, args.requests, questions, concurrency=concurrency, workers=workers
                )
                print(line, flush=True)


if __name__ == "__main__":
    main()
