"""Load on the real HTTP service: retrieval-only /query throughput and latency, and /query/stream time-to-first-token.

Usage: .venv/bin/python bench/api_load.py [--clients 32] [--requests 2000] [--ttft 10]
Starts `rag serve` on 127.0.0.1 (a free port, a temporary data dir, the shipped pipelines with the default local
model), indexes R-intro.pdf (Debian r-doc-pdf), then:
  1. POST /query with "generate": false from --clients concurrent clients (no LLM: a search API) -> req/s, p50, p99;
  2. POST /query/stream, one at a time, --ttft questions -> time to the first `token` event, p50 / max.
Targets (not tests): >= 100 req/s with p99 <= 150 ms retrieval-only; time-to-first-token p50 <= 1.5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from app.testing.servers import rag_command, rag_environment, rag_server
from bench._common import percentile

PDF = Path("/usr/share/R/doc/manual/R-intro.pdf")
QUESTIONS = [
    "How do you create a vector in R?",
    "Which function removes objects from the workspace?",
    "How do I read data from a file into a data frame?",
    "How can I get help on a function?",
    "How do I fit a linear model?",
    "What does the sink function do?",
    "How do I draw a histogram?",
    "How are missing values represented?",
    "How do I define my own function?",
    "What is a factor?",
    "How do I loop over values?",
    "How do I generate a sequence of numbers?",
]


async def _load(base: str, clients: int, total: int, headers: dict[str, str]) -> tuple[float, list[float], int]:
    latencies: list[float] = []
    errors = 0
    counter = iter(range(total))

    async def worker(http: httpx.AsyncClient) -> None:
        nonlocal errors
        for i in counter:
            body = {"question": QUESTIONS[i % len(QUESTIONS)], "collection": "bench", "generate": False, "top_k": 5}
            t0 = time.perf_counter()
            response = await http.post("/query", json=body)
            latencies.append((time.perf_counter() - t0) * 1000)
            errors += response.status_code != 200

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits, headers=headers) as http:
        started = time.perf_counter()
        await asyncio.gather(*(worker(http) for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return total / elapsed, latencies, errors


def _ttft(base: str, n: int, headers: dict[str, str]) -> list[float]:
    firsts = []
    with httpx.Client(base_url=base, timeout=300, headers=headers) as http:
        for question in QUESTIONS[:n]:
            t0 = time.perf_counter()
            event = None
            with http.stream("POST", "/query/stream", json={"question": question, "collection": "bench"}) as r:
                for line in r.iter_lines():
                    if line.startswith("event: "):
                        event = line.removeprefix("event: ")
                    elif event == "token" and line.startswith("data: "):
                        firsts.append(time.perf_counter() - t0)
                        break
    return firsts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--ttft", type=int, default=10)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="rag-api-bench-"))
    # auth on (every request checks a real reader key), the rate limit off: this measures throughput
    env = rag_environment(data_dir, auth=True, env={"HAYSTACK_TELEMETRY_ENABLED": "False", "RAG_RATE_LIMIT": "off"})
    rag_command("ingest", str(PDF), "-c", "bench", env=env)
    key = rag_command("keys", "create", "--role", "reader", "--collections", "bench", "--quiet", env=env)
    headers = {"Authorization": f"Bearer {key}"}
    with rag_server(None, data_dir, env=env, auth=True, workers=args.workers, seconds=180) as server:
        base = server.url
        rps, latencies, errors = asyncio.run(_load(base, args.clients, args.requests, headers))
        print(
            f"/query retrieval-only, {args.workers} worker(s), {args.clients} clients, {args.requests} requests: "
            f"{rps:.0f} req/s, "
            f"p50 {percentile(latencies, 50):.0f} ms, p99 {percentile(latencies, 99):.0f} ms, errors {errors}"
        )
        firsts = _ttft(base, args.ttft, headers)
        print(
            f"/query/stream time-to-first-token ({len(firsts)} questions, default model): "
            f"p50 {percentile(firsts, 50):.2f} s, max {max(firsts):.2f} s"
        )


if __name__ == "__main__":
    main()
